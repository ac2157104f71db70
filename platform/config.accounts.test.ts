// The account settings: the device cap and the login backoff (defaults and bounds).
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';

describe('account settings', () => {
  it('default to 6 devices per user and a backoff after 5 failures, capped at 15 minutes', () => {
    const c = loadConfig({});
    expect(c.MAX_DEVICES_PER_USER).toBe(6);
    expect(c.LOGIN_FAILURES_FREE).toBe(5);
    expect(c.LOGIN_BACKOFF_MAX_MS).toBe(900_000);
  });

  it('name the setting that is out of bounds', () => {
    expect(() => loadConfig({ MAX_DEVICES_PER_USER: '0' })).toThrow(/MAX_DEVICES_PER_USER/);
    expect(() => loadConfig({ MAX_DEVICES_PER_USER: '101' })).toThrow(/MAX_DEVICES_PER_USER/);
    expect(() => loadConfig({ LOGIN_FAILURES_FREE: '0' })).toThrow(/LOGIN_FAILURES_FREE/);
    expect(() => loadConfig({ LOGIN_BACKOFF_MAX_MS: '999' })).toThrow(/LOGIN_BACKOFF_MAX_MS/);
    expect(loadConfig({ MAX_DEVICES_PER_USER: '100', LOGIN_FAILURES_FREE: '1', LOGIN_BACKOFF_MAX_MS: '1000' })).toMatchObject({
      MAX_DEVICES_PER_USER: 100,
      LOGIN_FAILURES_FREE: 1,
      LOGIN_BACKOFF_MAX_MS: 1000,
    });
  });
});
