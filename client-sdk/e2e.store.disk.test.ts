// The disk key store: the shared contract, file permissions, a corrupt file, and the fsyncs that make each write durable.
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { keyStoreContract } from './e2e.store.contract.js';
import { diskKeyStore } from './e2e.store.disk.js';
import type { KeyStore } from './e2e.store.js';

/** What the store did on disk, in order: `sync <name>` (an fsync of that file or directory) and `rename`. */
const ops = vi.hoisted(() => [] as string[]);
vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...fs,
    open: async (...args: Parameters<typeof fs.open>) => {
      const handle = await fs.open(...args);
      const sync = handle.sync.bind(handle);
      handle.sync = async () => {
        ops.push(`sync ${String(args[0]).split('/').pop()!.replace(/\.[0-9a-f]{12}\.tmp$/, '.tmp')}`);
        return sync();
      };
      return handle;
    },
    rename: async (...args: Parameters<typeof fs.rename>) => {
      ops.push('rename');
      return fs.rename(...args);
    },
  };
});

const dirs: string[] = [];
const paths = new WeakMap<KeyStore, string>();
const fresh = async () => {
  const dir = await mkdtemp(join(tmpdir(), 'parley-keys-'));
  dirs.push(dir);
  return join(dir, 'device.keys.json');
};
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

keyStoreContract('disk', {
  create: async () => {
    const path = await fresh();
    const s = diskKeyStore(path);
    paths.set(s, path);
    return s;
  },
  reopen: async (s) => diskKeyStore(paths.get(s)!),
});

describe('diskKeyStore', () => {
  it('writes the file readable by its owner only and leaves no temporary files', async () => {
    const path = await fresh();
    const s = diskKeyStore(path);
    await s.write([{ section: 'device', id: 'self', value: { secret: 'x' } }]);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readdir(join(path, '..'))).toEqual(['device.keys.json']);
  });

  it('fsyncs the temporary file before the rename and the directory after it', async () => {
    const path = await fresh();
    const s = diskKeyStore(path);
    ops.length = 0;
    await s.write([{ section: 'device', id: 'self', value: { n: 1 } }]);
    await s.write([{ section: 'device', id: 'self', value: { n: 2 } }]);
    const dir = basename(join(path, '..'));
    const one = ['sync device.keys.json.tmp', 'rename', `sync ${dir}`];
    expect(ops).toEqual([...one, ...one]);
  });

  it('keeps the file intact and current through many queued writes, with no temporary file left', async () => {
    const path = await fresh();
    const s = diskKeyStore(path);
    await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        s.write([
          { section: 'sessions', id: `d${i % 7}`, value: { i } },
          { section: 'device', id: 'self', value: { last: i } },
        ]),
      ),
    );
    const onDisk = JSON.parse(await readFile(path, 'utf8')) as { v: number; sections: Record<string, Record<string, unknown>> };
    expect(onDisk.v).toBe(1);
    expect(onDisk.sections.device).toEqual({ self: { last: 199 } });
    expect(Object.keys(onDisk.sections.sessions!).sort()).toEqual(['d0', 'd1', 'd2', 'd3', 'd4', 'd5', 'd6']);
    expect(onDisk.sections.sessions!.d3).toEqual({ i: 199 - ((199 - 3) % 7) });
    const again = diskKeyStore(path);
    expect(await again.get('device', 'self')).toEqual({ last: 199 });
    expect(await readdir(join(path, '..'))).toEqual(['device.keys.json']);
  });

  it('fails loudly on a corrupt file instead of starting over with new keys', async () => {
    const path = await fresh();
    await writeFile(path, '{not json');
    await expect(diskKeyStore(path).get('device', 'self')).rejects.toThrow();
  });
});
