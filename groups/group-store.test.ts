import { describe, inject, it } from 'vitest';
import { PgliteSql } from '../platform/sql.pglite.js';
import { PostgresSql } from '../platform/sql.postgres.js';
import { createTestDatabase } from '../platform/test-databases.js';
import { groupStoreSuite } from './group-store.contract.js';

groupStoreSuite('PGlite', async () => ({ sql: await PgliteSql.open(), dispose: async () => {} }));

const adminUrl = inject('postgresAdminUrl');
if (adminUrl) {
  groupStoreSuite('PostgreSQL', async () => {
    const db = await createTestDatabase(adminUrl);
    return { sql: new PostgresSql(db.url, { max: 4 }), dispose: db.drop };
  });
} else {
  describe('GroupStore on PostgreSQL', () => it.skip(`skipped: ${inject('postgresUnavailable')}`, () => {}));
}
