// kafkajs log lines through our logger: transient start-up and reconnect conditions are warnings, real failures errors.
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { Kafka, logLevel } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { kafkaLogCreator, kafkaLogLevel } from './group-log.kafka.js';
import { createLogger } from './log.js';

/** A real pino logger at debug whose lines are kept as parsed JSON. */
function capturedLogger() {
  const lines: { level: number; msg: string; component?: string; error?: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { log: createLogger('debug', sink), lines };
}

const PINO = { debug: 20, warn: 40, error: 50 } as const;

describe('kafkaLogLevel', () => {
  it.each([
    // What kafkajs logs while the broker is still starting or restarting (it retries these itself).
    ['Connection error: connect ECONNREFUSED 127.0.0.1:9092', undefined],
    ['Connection timeout', undefined],
    ['Failed to connect to seed broker, trying another broker from the list: Connection error: connect ECONNREFUSED 127.0.0.1:9092', undefined],
    ['Response GroupCoordinator(key: 10, version: 2)', 'The group coordinator is not available'],
    ['Response FindCoordinator(key: 10, version: 2)', "The coordinator is loading and hence can't process requests for this group"],
    ['Response Metadata(key: 3, version: 6)', 'There is no leader for this topic-partition as we are in the middle of a leadership election'],
    ['Response Produce(key: 0, version: 7)', 'This server is not the leader for that topic-partition'],
    ['Response JoinGroup(key: 11, version: 5)', 'This is not the correct coordinator for this group'],
    ['Crash: KafkaJSNumberOfRetriesExceeded: Connection error: connect ECONNREFUSED 127.0.0.1:9092', undefined],
    ['Restarting the consumer in 300ms', undefined],
    ['The coordinator is not aware of this member, re-joining the group', 'The coordinator is not aware of this member'],
  ])('warns, not errors, on a transient condition: %s', (message, error) => {
    expect(kafkaLogLevel(logLevel.ERROR, message, error)).toBe('warn');
  });

  it.each([
    ['Response JoinGroup(key: 11, version: 5)', 'The group is rebalancing, so a rejoin is needed'],
    ['Response CreateTopics(key: 19, version: 3)', 'Topic with this name already exists'],
  ])('logs the normal course of a rebalance or an existing topic at debug: %s', (message, error) => {
    expect(kafkaLogLevel(logLevel.ERROR, message, error)).toBe('debug');
  });

  it.each([
    ['Response SaslAuthenticate(key: 36, version: 1)', 'Request is not valid given the current SASL state'],
    ['Response Produce(key: 0, version: 7)', 'The request included a message larger than the max message size the server will accept'],
    ['Response Metadata(key: 3, version: 6)', 'Not authorized to access topics: [Topic authorization failed]'],
    ['Crash: KafkaJSNonRetriableError: The group member protocol type is not supported', undefined],
    ['Failed to execute listener: boom', undefined],
  ])('keeps a real failure an error: %s', (message, error) => {
    expect(kafkaLogLevel(logLevel.ERROR, message, error)).toBe('error');
  });

  it('passes warnings on and drops info and debug chatter', () => {
    expect(kafkaLogLevel(logLevel.WARN, 'KafkaJS v2.0.0 switched default partitioner')).toBe('warn');
    expect(kafkaLogLevel(logLevel.INFO, 'Consumer has joined the group')).toBeNull();
    expect(kafkaLogLevel(logLevel.DEBUG, 'Request Metadata(key: 3, version: 6)')).toBeNull();
    expect(kafkaLogLevel(logLevel.NOTHING, 'anything')).toBeNull();
  });

  it('writes through the logger at the mapped level, with the component and kafkajs fields', () => {
    const { log, lines } = capturedLogger();
    const write = kafkaLogCreator(log)(logLevel.INFO);
    const entry = (level: logLevel, message: string, error?: string) =>
      write({ namespace: 'Connection', level, label: logLevel[level], log: { timestamp: '', logger: 'kafkajs', message, error } });
    entry(logLevel.ERROR, 'Response GroupCoordinator(key: 10, version: 2)', 'The group coordinator is not available');
    entry(logLevel.ERROR, 'Response Produce(key: 0, version: 7)', 'The request included a message larger than the max message size the server will accept');
    entry(logLevel.ERROR, 'Response JoinGroup(key: 11, version: 5)', 'The group is rebalancing, so a rejoin is needed');
    entry(logLevel.INFO, 'Starting');
    expect(lines.map((l) => [l.level, l.component, l.error])).toEqual([
      [PINO.warn, 'kafka', 'The group coordinator is not available'],
      [PINO.error, 'kafka', 'The request included a message larger than the max message size the server will accept'],
      [PINO.debug, 'kafka', 'The group is rebalancing, so a rejoin is needed'],
    ]);
  });
});

describe('kafkajs against a broker that is not up yet', () => {
  it('logs its refused connections as warnings, never as errors', async () => {
    // A loopback port with nothing listening: what a client sees while the broker is still starting.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));

    const { log, lines } = capturedLogger();
    const kafka = new Kafka({ clientId: 'parley-log-test', brokers: [`127.0.0.1:${port}`], logCreator: kafkaLogCreator(log), retry: { retries: 1, initialRetryTime: 50 } });
    const admin = kafka.admin();
    await expect(admin.connect()).rejects.toThrow();
    const kafkaLines = lines.filter((l) => l.component === 'kafka');
    expect(kafkaLines.some((l) => l.level === PINO.warn && l.msg.includes('Connection error'))).toBe(true);
    expect(kafkaLines.filter((l) => l.level >= PINO.error)).toEqual([]);
  });
});
