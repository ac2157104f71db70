// The installed postgres.js carries the nextWrite guard (scripts/patch-postgres.mjs), without which a PostgreSQL restart can crash a gateway.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

describe('postgres.js driver', () => {
  it('is patched against the null-socket write crash (porsager/postgres#1208)', () => {
    const pkg = resolve(import.meta.dirname, '../node_modules/postgres');
    for (const rel of ['src/connection.js', 'cjs/src/connection.js']) {
      expect(readFileSync(join(pkg, rel), 'utf8')).toContain('parley: guard');
    }
  });
});
