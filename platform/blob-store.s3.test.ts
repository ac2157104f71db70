import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { describe, inject, it } from 'vitest';
import { blobStoreContract } from './blob-store.contract.js';
import { createS3Client, S3BlobStore } from './blob-store.s3.js';

const s3 = inject('s3');

if (s3) {
  // Each run gets its own bucket on the S3-compatible server, emptied and deleted afterwards.
  blobStoreContract('S3 (S3Proxy)', async () => {
    const client = createS3Client({ ...s3, region: 'us-east-1' });
    const bucket = `parley-test-${randomBytes(6).toString('hex')}`;
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    const listAll = async () => {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
        // S3Proxy's filesystem backend lists its directories as "…/" keys; they are not objects
        // (and deleting one takes it ~10 s), so they are left out, and go with the bucket.
        keys.push(...(page.Contents ?? []).map((o) => o.Key!).filter((k) => !k.endsWith('/')));
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return keys;
    };
    return {
      store: new S3BlobStore(client, bucket, { prefix: 'parley/' }),
      listAll,
      dispose: async () => {
        for (const key of await listAll()) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
        await client.send(new DeleteBucketCommand({ Bucket: bucket }));
        client.destroy();
      },
    };
  });
} else {
  describe('BlobStore contract: S3 (S3Proxy)', () => it.skip(`skipped: ${inject('s3Unavailable')}`, () => {}));
}
