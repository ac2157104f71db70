import { describe, inject, it } from 'vitest';
import { sqlContract } from './sql.contract.js';
import { PostgresSql } from './sql.postgres.js';
import { createTestDatabase } from './test-databases.js';

const adminUrl = inject('postgresAdminUrl');

if (adminUrl) {
  sqlContract('PostgreSQL', async () => {
    const db = await createTestDatabase(adminUrl);
    return { open: async () => new PostgresSql(db.url, { max: 4 }), dispose: db.drop };
  });
} else {
  describe('Sql contract: PostgreSQL', () => {
    it.skip(`skipped: ${inject('postgresUnavailable')}`, () => {});
  });
}
