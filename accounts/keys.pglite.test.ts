// The key directory contract on PGlite.
import { PgliteSql } from '../platform/sql.pglite.js';
import { keyDirectoryContract } from './keys.contract.js';

keyDirectoryContract('PGlite (in memory)', async () => ({ open: () => PgliteSql.open(), dispose: async () => {} }));
