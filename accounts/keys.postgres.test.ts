// The key directory contract on PostgreSQL, where concurrent fetches really run in parallel.
import { describe, inject, it } from 'vitest';
import { createTestDatabase } from '../platform/test-databases.js';
import { PostgresSql } from '../platform/sql.postgres.js';
import { keyDirectoryContract } from './keys.contract.js';

const adminUrl = inject('postgresAdminUrl');

if (adminUrl) {
  // A pool of 8: concurrent bundle fetches really run at once, on separate connections.
  keyDirectoryContract('PostgreSQL', async () => {
    const db = await createTestDatabase(adminUrl);
    return { open: async () => new PostgresSql(db.url, { max: 8 }), dispose: db.drop };
  });
} else {
  describe('KeyDirectory: PostgreSQL', () => {
    it.skip(`skipped: ${inject('postgresUnavailable')}`, () => {});
  });
}
