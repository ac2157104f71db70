import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const c = loadConfig({});
    expect(c.PORT).toBe(8080);
    expect(c.SQL_DRIVER).toBe('pglite');
    expect(c.DATA_DIR).toBe('./data');
    expect(c.WS_MAX_PAYLOAD_BYTES).toBe(262_144);
  });

  it('names the setting that is wrong', () => {
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(/PORT/);
    expect(() => loadConfig({ SQL_DRIVER: 'mysql' })).toThrow(/SQL_DRIVER/);
    expect(() => loadConfig({ JWT_SECRET: 'short' })).toThrow(/JWT_SECRET/);
  });

  it('requires DATABASE_URL for the postgres driver', () => {
    expect(() => loadConfig({ SQL_DRIVER: 'postgres' })).toThrow(ConfigError);
    expect(() => loadConfig({ SQL_DRIVER: 'postgres' })).toThrow(/DATABASE_URL/);
    expect(loadConfig({ SQL_DRIVER: 'postgres', DATABASE_URL: 'postgres://x@127.0.0.1/db' }).SQL_DRIVER).toBe('postgres');
  });

  it('requires REDIS_URL for the redis presence driver', () => {
    expect(loadConfig({}).PRESENCE_DRIVER).toBe('memory');
    expect(() => loadConfig({ PRESENCE_DRIVER: 'redis' })).toThrow(/REDIS_URL/);
    expect(() => loadConfig({ PRESENCE_DRIVER: 'etcd' })).toThrow(/PRESENCE_DRIVER/);
    expect(loadConfig({ PRESENCE_DRIVER: 'redis', REDIS_URL: 'redis://127.0.0.1:6379' }).REDIS_KEY_PREFIX).toBe('parley:');
  });

  it('has file defaults and requires the S3 settings for the s3 blob driver', () => {
    const c = loadConfig({});
    expect(c.FILE_MAX_BYTES).toBe(104_857_600);
    expect(c.FILE_RETENTION_DAYS).toBe(30);
    expect(c.BLOB_DRIVER).toBe('disk');
    expect(c.S3_REGION).toBe('us-east-1');
    expect(() => loadConfig({ BLOB_DRIVER: 's3' })).toThrow(/S3_BUCKET[\s\S]*S3_ACCESS_KEY_ID[\s\S]*S3_SECRET_ACCESS_KEY/);
    expect(() => loadConfig({ BLOB_DRIVER: 'gcs' })).toThrow(/BLOB_DRIVER/);
    expect(() => loadConfig({ FILE_MAX_BYTES: String(6 * 1024 ** 3) })).toThrow(/FILE_MAX_BYTES/);
    expect(() => loadConfig({ BLOB_DRIVER: 's3', S3_BUCKET: 'Bad_Bucket', S3_ACCESS_KEY_ID: 'k', S3_SECRET_ACCESS_KEY: 's' })).toThrow(/S3_BUCKET/);
    const s3 = loadConfig({ BLOB_DRIVER: 's3', S3_BUCKET: 'parley-files', S3_ACCESS_KEY_ID: 'k', S3_SECRET_ACCESS_KEY: 's', S3_ENDPOINT: 'http://127.0.0.1:9000' });
    expect(s3.S3_BUCKET).toBe('parley-files');
  });

  it('rejects a presence TTL shorter than the heartbeat', () => {
    expect(() => loadConfig({ HEARTBEAT_INTERVAL_MS: '5000', PRESENCE_TTL_MS: '4000' })).toThrow(/PRESENCE_TTL_MS/);
  });
});
