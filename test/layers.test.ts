// The layering check: production code imports only downward (docs in README "Layout"), and the SDK only the wire protocol.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..');

/** Lower rank = lower layer; a file may import its own layer or lower ones. Domains are ordered too, so they never import each other both ways. */
const RANK: Record<string, number> = {
  protocol: 0,
  platform: 1,
  accounts: 2,
  messaging: 3,
  groups: 4,
  files: 5,
  notifications: 6,
  routing: 7,
  gateway: 8,
  '.': 9, // the composition root (top-level files)
};

/** Files that exist for tests: they may also import test support code. */
const isTestCode = (file: string) => /\.(test|contract)\.ts$|test-support\.ts$|test-databases\.ts$/.test(file);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sources(full);
    return /\.tsx?$/.test(name) ? [full] : [];
  });
}

/** Every relative import of a file, as a repo-relative path. */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found = [...text.matchAll(/(?:from\s+|import\(\s*|import\s+)['"](\.{1,2}\/[^'"]+)['"]/g)].map((m) => m[1]!);
  return found.map((spec) => path.relative(ROOT, path.resolve(path.dirname(file), spec)));
}

const layerOf = (rel: string) => (rel.includes('/') ? rel.split('/')[0]! : '.');

/** Whether the file `from` may import `to` (repo-relative paths). */
export function allowed(from: string, to: string): boolean {
  const fromLayer = layerOf(from);
  const toLayer = layerOf(to);
  if (toLayer === 'test') return isTestCode(from);
  if (fromLayer === 'client-sdk') return toLayer === 'client-sdk' || toLayer === 'protocol';
  // The web client is an app like any other: the SDK's public surface (client-sdk/index.ts) and itself.
  if (fromLayer === 'web') return toLayer === 'web' || to === 'client-sdk/index.js';
  return toLayer in RANK && fromLayer in RANK && RANK[toLayer]! <= RANK[fromLayer]!;
}

/** Every import that breaks the rules, as "from -> to". */
function violations(): string[] {
  const files = [
    ...Object.keys(RANK)
      .filter((l) => l !== '.')
      .flatMap((l) => sources(path.join(ROOT, l))),
    ...readdirSync(ROOT)
      .filter((n) => n.endsWith('.ts') && !n.endsWith('.config.ts'))
      .map((n) => path.join(ROOT, n)),
    ...sources(path.join(ROOT, 'client-sdk')),
    ...sources(path.join(ROOT, 'web', 'src')),
  ];
  return files.flatMap((file) => {
    const from = path.relative(ROOT, file);
    return imports(file)
      .filter((to) => !allowed(from, to))
      .map((to) => `${from} -> ${to}`);
  });
}

describe('layers', () => {
  it('production code imports only its own layer or lower ones, and the SDK only the protocol', () => {
    expect(violations()).toEqual([]);
  });

  it('refuses an upward import, the SDK reaching into the server, and test code in production', () => {
    expect(allowed('gateway/app.ts', 'messaging/messages.ts')).toBe(true);
    expect(allowed('server.ts', 'gateway/app.ts')).toBe(true);
    expect(allowed('groups/group-store.ts', 'messaging/append.ts')).toBe(true);
    expect(allowed('messaging/messages.ts', 'routing/delivery.ts')).toBe(false);
    expect(allowed('messaging/messages.ts', 'groups/groups.ts')).toBe(false);
    expect(allowed('protocol/frames.ts', 'platform/log.ts')).toBe(false);
    expect(allowed('client-sdk/client.ts', 'protocol/frames.ts')).toBe(true);
    expect(allowed('client-sdk/client.ts', 'platform/log.ts')).toBe(false);
    expect(allowed('web/src/model.ts', 'client-sdk/index.js')).toBe(true);
    expect(allowed('web/src/model.ts', 'client-sdk/client.js')).toBe(false);
    expect(allowed('web/src/model.ts', 'protocol/frames.js')).toBe(false);
    expect(allowed('platform/cache.contract.ts', 'test/support/wait.ts')).toBe(true);
    expect(allowed('platform/cache.redis.ts', 'test/support/wait.ts')).toBe(false);
  });

  it('finds the imports of a file, dynamic ones included', () => {
    expect(imports(path.join(ROOT, 'server.ts')).length).toBeGreaterThan(0);
  });
});
