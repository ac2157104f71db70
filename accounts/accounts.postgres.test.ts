// The accounts contract on PostgreSQL, where concurrent logins really run in parallel (the device cap's race).
import { describe, inject, it } from 'vitest';
import { createTestDatabase } from '../platform/test-databases.js';
import { PostgresSql } from '../platform/sql.postgres.js';
import { accountsContract } from './accounts.contract.js';

const adminUrl = inject('postgresAdminUrl');

if (adminUrl) {
  // A pool of 8: the concurrent logins really run at once, on separate connections.
  accountsContract('PostgreSQL', async () => {
    const db = await createTestDatabase(adminUrl);
    return { open: async () => new PostgresSql(db.url, { max: 8 }), dispose: db.drop };
  });
} else {
  describe('Accounts: PostgreSQL', () => {
    it.skip(`skipped: ${inject('postgresUnavailable')}`, () => {});
  });
}
