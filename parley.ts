// The composition root: builds the whole platform (adapters, domain services, routing, transports) from a validated config.
import { FileService } from './files/files.js';
import { RetentionSweeper } from './files/retention-sweeper.js';
import { Accounts, signingSecret } from './accounts/accounts.js';
import { Blocks } from './accounts/blocks.js';
import { Reports } from './accounts/reports.js';
import { buildGateway } from './gateway/app.js';
import { Delivery } from './routing/delivery.js';
import { Conversations } from './messaging/conversations.js';
import { MessageStore } from './messaging/message-store.js';
import { MessagesManager, type MessagesOptions } from './messaging/messages.js';
import { GroupFanout, type GroupFanoutOptions } from './routing/group-fanout.js';
import { GroupReceipts } from './routing/group-receipts.js';
import { GroupStore } from './groups/group-store.js';
import { GroupsManager } from './groups/groups.js';
import { systemClock } from './platform/clock.js';
import { type Config, ConfigError, loadConfig } from './platform/config.js';
import { createLogger, type Logger } from './platform/log.js';
import { createMetrics } from './platform/metrics.js';
import { migrate } from './platform/migrations.js';
import { createPushSender } from './platform/push.js';
import { vapidKeys } from './platform/push.vapid.js';
import { MessagePurge } from './messaging/purge.js';
import { Notifier } from './notifications/notifier.js';
import { Tokens } from './platform/tokens.js';
import { openAdapters } from './platform/wiring.js';

export interface ParleyOptions {
  /**
   * Called by the fan-out worker after it delivered a batch and before it commits the batch's
   * offsets. For fault-injection tests only (test/support/fault-server.ts); unset in production.
   */
  afterFanoutDeliver?: GroupFanoutOptions['afterDeliver'];
  /**
   * Called after a direct message is committed and before it is published for delivery.
   * For fault-injection tests only (test/support/fault-server.ts); unset in production.
   */
  afterCommit?: MessagesOptions['afterCommit'];
}

export interface Parley {
  /** Where it listens, e.g. http://localhost:8080. */
  url: string;
  log: Logger;
  /** Closes every socket (1001), stops the workers, flushes pending commits and closes the adapters. */
  stop(): Promise<void>;
}

/** Builds and starts everything the config asks for, and listens on its port. */
export async function startParley(config: Config, options: ParleyOptions = {}): Promise<Parley> {
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
  const blocks = new Blocks(adapters.sql, clock, config.BLOCKS_MAX_PER_USER);
  const store = new MessageStore(adapters.sql, clock, {
    batchMax: config.SEND_BATCH_MAX,
    shards: config.SEND_COMMIT_SHARDS ?? 1,
    lingerMs: config.SEND_COMMIT_LINGER_MS ?? 0,
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
  // Pushes: Web Push whenever VAPID keys exist (generated and kept when unset), webhooks when the relay is configured.
  const vapid = config.PUSH_DRIVER === 'webpush' || config.VAPID_PUBLIC_KEY ? await vapidKeys(adapters.sql, config) : null;
  const pushSender = createPushSender(config, vapid);
  const notifier = new Notifier(adapters.sql, clock, pushSender, log, metrics, {
    coalesceMs: config.PUSH_COALESCE_MS,
    delayMs: config.PUSH_DELAY_MS,
    pollMs: config.PUSH_POLL_MS,
    leaseMs: config.PUSH_LEASE_MS,
  });
  notifier.start();
  const purge = new MessagePurge(adapters.sql, clock, log, metrics, {
    policy: config.MESSAGE_RETENTION,
    retentionMs: config.MESSAGE_RETENTION_DAYS * 86_400_000,
    intervalMs: config.MESSAGE_SWEEP_INTERVAL_MS,
    batch: config.MESSAGE_SWEEP_BATCH,
    vacuum: config.SQL_DRIVER === 'pglite',
  });
  purge.start();
  const messages = new MessagesManager(store, accounts, delivery, metrics, log, {
    groups,
    log: adapters.groupLog,
    receipts,
    typingMaxMembers: config.GROUP_TYPING_MAX_MEMBERS,
  }, { afterCommit: options.afterCommit, notices: notifier, expiry: { maxAheadMs: config.MESSAGE_RETENTION_DAYS * 86_400_000 }, blocks });
  const fanout = config.FANOUT_WORKER
    ? new GroupFanout(adapters.groupLog, groups, delivery, metrics, log, {
        afterDeliver: options.afterFanoutDeliver,
        broadcastMinMembers: config.GROUP_BROADCAST_MIN_MEMBERS,
        notices: notifier,
      })
    : null;
  await fanout?.start();
  const files = new FileService(adapters.sql, adapters.blobs, store, clock, metrics, log, {
    maxBytes: config.FILE_MAX_BYTES,
    retentionMs: config.FILE_RETENTION_DAYS * 86_400_000,
  });
  const sweeper = new RetentionSweeper(files, clock, log, metrics, { intervalMs: config.FILE_SWEEP_INTERVAL_MS });
  sweeper.start();
  const push = {
    notifier,
    options: {
      vapidPublicKey: pushSender?.serves('webpush') ? vapid!.publicKey : null,
      webhook: pushSender?.serves('webhook') ?? false,
      endpointHosts: config.PUSH_ENDPOINT_HOSTS,
      allowHttp: config.PUSH_ALLOW_HTTP,
    },
  };
  const gateway = await buildGateway({
    config,
    log,
    metrics,
    clock,
    sql: adapters.sql,
    tokens,
    accounts,
    store,
    messages,
    delivery,
    groups,
    files,
    sweepFiles: () => sweeper.sweep(),
    push,
    blocks,
    reports: new Reports(adapters.sql, clock),
    conversations: new Conversations(adapters.sql),
  });

  const address = await gateway.http.listen({ port: config.PORT, host: config.HOST });
  const port = new URL(address).port;
  const url = `http://${config.HOST === '0.0.0.0' || config.HOST === '::' ? 'localhost' : config.HOST}:${port}`;
  log.info({ url, gateway: delivery.gatewayId, sql: config.SQL_DRIVER, blobs: config.BLOB_DRIVER, port: Number(port) }, 'listening');


  return {
    url,
    log,
    stop: async () => {
      await gateway.close();
      await fanout?.stop();
      await receipts.stop();
      await sweeper.stop();
      await purge.stop();
      await notifier.stop();
      await delivery.stop();
      await store.flush();
      await adapters.close();
    },
  };
}

/** Starts Parley from the environment; exits 2 on a bad setting, 1 if it cannot start. The entry of server.ts (and of test/support/fault-server.ts). */
export async function serve(options: ParleyOptions = {}): Promise<void> {
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
  const parley = await startParley(config, options);
  const { log } = parley;

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
      await parley.stop();
    } catch (err) {
      log.error({ err }, 'error during shutdown');
    }
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

