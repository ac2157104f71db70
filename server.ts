// Entry point: the whole platform in one process (gateway, messaging, files, REST) on the configured adapters.
import { FileService } from './files/files.js';
import { RetentionSweeper } from './files/retention-sweeper.js';
import { Accounts, signingSecret } from './accounts/accounts.js';
import { buildGateway } from './gateway/app.js';
import { Delivery } from './routing/delivery.js';
import { MessageStore } from './messaging/message-store.js';
import { MessagesManager } from './messaging/messages.js';
import { GroupFanout } from './routing/group-fanout.js';
import { GroupReceipts } from './routing/group-receipts.js';
import { GroupStore } from './groups/group-store.js';
import { GroupsManager } from './groups/groups.js';
import { systemClock } from './platform/clock.js';
import { ConfigError, loadConfig } from './platform/config.js';
import { createLogger } from './platform/log.js';
import { createMetrics } from './platform/metrics.js';
import { migrate } from './platform/migrations.js';
import { Tokens } from './platform/tokens.js';
import { openAdapters } from './platform/wiring.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.LOG_LEVEL);
  const clock = systemClock;
  const metrics = createMetrics();
  const adapters = await openAdapters(config, clock, log, metrics);
  await migrate(adapters.sql);

  const tokens = new Tokens(await signingSecret(adapters.sql, config.JWT_SECRET), config.TOKEN_TTL_SECONDS, clock);
  const accounts = new Accounts(adapters.sql, tokens, clock, {
    cache: adapters.cache,
    maxDevices: config.MAX_DEVICES_PER_USER,
    loginFailuresFree: config.LOGIN_FAILURES_FREE,
    loginBackoffMaxMs: config.LOGIN_BACKOFF_MAX_MS,
  });
  const store = new MessageStore(adapters.sql, clock, {
    batchMax: config.SEND_BATCH_MAX,
    shards: config.SEND_COMMIT_SHARDS ?? (config.SQL_DRIVER === 'postgres' ? 4 : 1),
    onBatch: (n) => metrics.commitBatchSize.observe(n),
  });
  const delivery = new Delivery(adapters.presence, adapters.broker, log, metrics, {
    gatewayId: config.GATEWAY_ID,
    presenceTtlMs: config.PRESENCE_TTL_MS,
    heartbeatMs: config.HEARTBEAT_INTERVAL_MS,
  });
  await delivery.start();
  const groupStore = new GroupStore(adapters.sql, clock);
  const groups = new GroupsManager(groupStore, adapters.cache, adapters.groupLog, clock, metrics, log, { maxMembers: config.GROUP_MAX_MEMBERS });
  delivery.useGroupAudience((groupId, minVersion, seq) => groups.audience(groupId, minVersion, seq));
  const receipts = new GroupReceipts(groupStore, groups, delivery, metrics, log, { intervalMs: config.GROUP_RECEIPT_INTERVAL_MS });
  receipts.start();
  const messages = new MessagesManager(store, accounts, delivery, metrics, log, {
    groups,
    log: adapters.groupLog,
    receipts,
    typingMaxMembers: config.GROUP_TYPING_MAX_MEMBERS,
  });
  const fanout = config.FANOUT_WORKER
    ? new GroupFanout(adapters.groupLog, groups, delivery, metrics, log, {
        crashBeforeCommitMarker: config.FAULT_FANOUT_CRASH_MARKER,
        broadcastMinMembers: config.GROUP_BROADCAST_MIN_MEMBERS,
      })
    : null;
  await fanout?.start();
  const files = new FileService(adapters.sql, adapters.blobs, store, clock, metrics, log, {
    maxBytes: config.FILE_MAX_BYTES,
    retentionMs: config.FILE_RETENTION_DAYS * 86_400_000,
  });
  const sweeper = new RetentionSweeper(files, clock, log, metrics, { intervalMs: config.FILE_SWEEP_INTERVAL_MS });
  sweeper.start();
  const gateway = await buildGateway({ config, log, metrics, clock, sql: adapters.sql, tokens, accounts, store, messages, delivery, groups, files });

  const address = await gateway.http.listen({ port: config.PORT, host: config.HOST });
  const port = new URL(address).port;
  const url = `http://${config.HOST === '0.0.0.0' || config.HOST === '::' ? 'localhost' : config.HOST}:${port}`;
  log.info({ url, gateway: delivery.gatewayId, sql: config.SQL_DRIVER, blobs: config.BLOB_DRIVER, port: Number(port) }, 'listening');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    // Whatever hangs (a backing service that never answers), the process ends within 20 s.
    setTimeout(() => {
      log.error('shutdown took longer than 20 s; exiting');
      process.exit(1);
    }, 20_000).unref();
    try {
      await gateway.close();
      await fanout?.stop();
      await receipts.stop();
      await sweeper.stop();
      await delivery.stop();
      await store.flush();
      await adapters.close();
    } catch (err) {
      log.error({ err }, 'error during shutdown');
    }
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err) => {
  console.error('parley failed to start:', err);
  process.exit(1);
});
