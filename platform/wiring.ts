// The one place that chooses adapters: from the configuration to ready ports.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlobStore } from './blob-store.js';
import { DiskBlobStore } from './blob-store.disk.js';
import type { Broker } from './broker.js';
import { MemoryBroker } from './broker.memory.js';
import type { Clock } from './clock.js';
import type { Config } from './config.js';
import type { Presence } from './presence.js';
import { MemoryPresence } from './presence.memory.js';
import { RedisPresence } from './presence.redis.js';
import { RedisBroker } from './broker.redis.js';
import { openRedis } from './redis.js';
import type { Redis } from 'ioredis';
import type { Sql } from './sql.js';
import { PgliteSql } from './sql.pglite.js';
import { PostgresSql } from './sql.postgres.js';
import { Kafka } from 'kafkajs';
import type { Cache } from './cache.js';
import { MemoryCache } from './cache.memory.js';
import { RedisCache } from './cache.redis.js';
import type { GroupLog } from './group-log.js';
import { KafkaGroupLog, kafkaLogCreator } from './group-log.kafka.js';
import { MemoryGroupLog } from './group-log.memory.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

export interface Adapters {
  sql: Sql;
  presence: Presence;
  broker: Broker;
  /** Shared short-lived values (group memberships); on Redis whenever presence is. */
  cache: Cache;
  groupLog: GroupLog;
  blobs: BlobStore;
  close(): Promise<void>;
}

export async function openAdapters(config: Config, clock: Clock, log: Logger, metrics: Metrics): Promise<Adapters> {
  let sql: Sql;
  if (config.SQL_DRIVER === 'postgres') {
    sql = new PostgresSql(config.DATABASE_URL!, { max: config.SQL_POOL_SIZE });
  } else {
    const dir = join(config.DATA_DIR, 'pglite');
    await mkdir(dir, { recursive: true });
    sql = await PgliteSql.open(dir);
  }
  let presence: Presence;
  let broker: Broker;
  let cache: Cache;
  const redisClients: Redis[] = [];
  if (config.PRESENCE_DRIVER === 'redis') {
    const [main, pub, sub] = await Promise.all(['presence', 'publish', 'subscribe'].map((n) => openRedis(config.REDIS_URL!, `parley-${n}`)));
    redisClients.push(main!, pub!, sub!);
    presence = new RedisPresence(main!, clock, { prefix: config.REDIS_KEY_PREFIX });
    broker = new RedisBroker(pub!, sub!, { prefix: config.REDIS_KEY_PREFIX });
    cache = new RedisCache(main!, {
      prefix: config.REDIS_KEY_PREFIX,
      onFailure: (operation, err) => {
        metrics.backendFailures.inc({ backend: 'cache', operation });
        log.warn({ err, operation }, 'cache unavailable; reading from the store');
      },
    });
  } else {
    presence = new MemoryPresence(clock);
    broker = new MemoryBroker();
    cache = new MemoryCache(clock);
  }
  let groupLog: GroupLog;
  if (config.GROUP_LOG_DRIVER === 'kafka') {
    const kafka = new Kafka({
      clientId: `parley-${config.GATEWAY_ID ?? process.pid}`,
      brokers: config.KAFKA_BROKERS!.split(','),
      logCreator: kafkaLogCreator(log),
    });
    groupLog = await KafkaGroupLog.open(kafka, log, {
      topic: config.KAFKA_TOPIC,
      partitions: config.KAFKA_PARTITIONS,
      retentionMs: config.KAFKA_RETENTION_HOURS * 3_600_000,
    });
  } else {
    groupLog = new MemoryGroupLog();
  }
  let blobs: BlobStore;
  let closeBlobs = () => {};
  if (config.BLOB_DRIVER === 's3') {
    // Loaded only when used: the AWS SDK is large, and the embedded default does not need it.
    const { createS3Client, S3BlobStore } = await import('./blob-store.s3.js');
    const s3 = createS3Client({
      endpoint: config.S3_ENDPOINT,
      region: config.S3_REGION,
      accessKeyId: config.S3_ACCESS_KEY_ID!,
      secretAccessKey: config.S3_SECRET_ACCESS_KEY!,
    });
    blobs = new S3BlobStore(s3, config.S3_BUCKET!);
    closeBlobs = () => s3.destroy();
  } else {
    blobs = await DiskBlobStore.open(join(config.DATA_DIR, 'blobs'));
  }
  return {
    sql,
    presence,
    broker,
    cache,
    groupLog,
    blobs,
    close: async () => {
      closeBlobs();
      await groupLog.close();
      await cache.close();
      await broker.close();
      await presence.close();
      for (const c of redisClients) c.disconnect();
      await sql.close();
    },
  };
}
