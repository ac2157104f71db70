// The purge contract on PGlite (the embedded default).
import { PgliteSql } from '../platform/sql.pglite.js';
import { purgeSuite } from './purge.contract.js';

purgeSuite('PGlite', async () => ({ sql: await PgliteSql.open(), dispose: async () => {} }));
