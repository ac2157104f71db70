// The purge contract on PostgreSQL, where several connections really purge at once; skipped with its reason when PostgreSQL is unreachable.
import { describe, inject, it } from 'vitest';
import { PostgresSql } from '../platform/sql.postgres.js';
import { createTestDatabase } from '../platform/test-databases.js';
import { purgeSuite } from './purge.contract.js';

const adminUrl = inject('postgresAdminUrl');
if (adminUrl) {
  purgeSuite('PostgreSQL', async () => {
    const db = await createTestDatabase(adminUrl);
    return { sql: new PostgresSql(db.url, { max: 4 }), dispose: db.drop };
  });
} else {
  describe('MessagePurge on PostgreSQL', () => it.skip(`skipped: ${inject('postgresUnavailable')}`, () => {}));
}
