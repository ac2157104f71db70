import { sqlContract } from './sql.contract.js';
import { PgliteSql } from './sql.pglite.js';

sqlContract('PGlite (in memory)', async () => ({ open: () => PgliteSql.open(), dispose: async () => {} }));
