import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blobStoreContract } from './blob-store.contract.js';
import { DiskBlobStore } from './blob-store.disk.js';

blobStoreContract('disk', async () => {
  const root = await mkdtemp(join(tmpdir(), 'parley-blobs-'));
  return {
    store: await DiskBlobStore.open(root),
    listAll: async () =>
      (await readdir(root, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name)),
    dispose: () => rm(root, { recursive: true, force: true }),
  };
});
