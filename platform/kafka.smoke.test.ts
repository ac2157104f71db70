// The Kafka broker started by scripts/services.sh works with kafkajs: explicit topics, keyed order, consumer groups.
import { randomBytes } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { describe, expect, inject, it } from 'vitest';

const brokers = inject('kafkaBrokers');
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

describe.skipIf(!brokers)(`Kafka broker (${brokers ?? inject('kafkaUnavailable')})`, () => {
  it('keeps per-key order through a consumer group', async () => {
    const kafka = new Kafka({ clientId: 'parley-smoke', brokers: [brokers!], logLevel: logLevel.ERROR });
    const topic = `smoke-${randomBytes(6).toString('hex')}`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
    const producer = kafka.producer();
    await producer.connect();
    const sent = Array.from({ length: 30 }, (_, i) => ({ key: `k${i % 3}`, value: String(i) }));
    for (const m of sent) await producer.send({ topic, messages: [m] });

    const consumer = kafka.consumer({ groupId: `g-${topic}` });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const got: { key: string; value: string }[] = [];
    await new Promise<void>((resolve, reject) => {
      consumer
        .run({
          eachMessage: async ({ message }) => {
            got.push({ key: message.key!.toString(), value: message.value!.toString() });
            if (got.length === sent.length) resolve();
          },
        })
        .catch(reject);
    });
    for (const k of ['k0', 'k1', 'k2']) {
      expect(got.filter((m) => m.key === k).map((m) => m.value)).toEqual(sent.filter((m) => m.key === k).map((m) => m.value));
    }
    await consumer.disconnect();
    await producer.disconnect();
    await admin.deleteTopics({ topics: [topic] });
    await admin.disconnect();
  });
});
