import { randomBytes } from 'node:crypto';
import { ConfigResourceTypes, Kafka } from 'kafkajs';
import { describe, expect, inject, it } from 'vitest';
import { groupLogContract } from './group-log.contract.js';
import { KafkaGroupLog, kafkaLogCreator } from './group-log.kafka.js';
import { createLogger } from './log.js';

const brokers = inject('kafkaBrokers');
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

if (brokers) {
  groupLogContract(`Kafka (${brokers})`, async () => {
    const log = createLogger('silent');
    const kafka = new Kafka({ clientId: 'parley-test', brokers: [brokers], logCreator: kafkaLogCreator(log) });
    const topic = `parley-test-${randomBytes(6).toString('hex')}`;
    const groupLog = await KafkaGroupLog.open(kafka, log, { topic, partitions: 3, retryMs: 50 });
    let n = 0;
    return {
      log: groupLog,
      group: () => `${topic}-g${n++}`,
      dispose: async () => {
        await groupLog.close();
        const admin = kafka.admin();
        await admin.connect();
        await admin.deleteTopics({ topics: [topic] }).catch(() => {});
        await admin.disconnect();
      },
    };
  });

  describe('Kafka group log topic', () => {
    it('is created with the retention it was given, and segments of at most an hour so records go soon after', async () => {
      const log = createLogger('silent');
      const kafka = new Kafka({ clientId: 'parley-test', brokers: [brokers], logCreator: kafkaLogCreator(log) });
      const topic = `parley-test-${randomBytes(6).toString('hex')}`;
      const groupLog = await KafkaGroupLog.open(kafka, log, { topic, partitions: 1, retentionMs: 7_200_000 });
      const admin = kafka.admin();
      await admin.connect();
      try {
        const described = await admin.describeConfigs({
          includeSynonyms: false,
          resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['retention.ms', 'segment.ms'] }],
        });
        const entries = Object.fromEntries(described.resources[0]!.configEntries.map((e) => [e.configName, e.configValue]));
        expect(entries).toEqual({ 'retention.ms': '7200000', 'segment.ms': '3600000' });
      } finally {
        await groupLog.close();
        await admin.deleteTopics({ topics: [topic] }).catch(() => {});
        await admin.disconnect();
      }
    });
  });
} else {
  describe('GroupLog contract: Kafka', () => it.skip(`skipped: ${inject('kafkaUnavailable')}`, () => {}));
}
