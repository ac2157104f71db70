// The disk key store: the shared contract, file permissions and a corrupt file.
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { keyStoreContract } from './e2e.store.contract.js';
import { diskKeyStore } from './e2e.store.disk.js';
import type { KeyStore } from './e2e.store.js';

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

  it('fails loudly on a corrupt file instead of starting over with new keys', async () => {
    const path = await fresh();
    await writeFile(path, '{not json');
    await expect(diskKeyStore(path).get('device', 'self')).rejects.toThrow();
  });
});
