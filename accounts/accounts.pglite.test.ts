// The accounts contract on PGlite.
import { PgliteSql } from '../platform/sql.pglite.js';
import { accountsContract } from './accounts.contract.js';

accountsContract('PGlite (in memory)', async () => ({ open: () => PgliteSql.open(), dispose: async () => {} }));
