// The local Kafka tooling end to end: a real broker, an idempotent producer and a consumer group (kafkajs).
import { Kafka, logLevel, Partitioners } from "kafkajs";
import type { Consumer, KafkaMessage, Producer } from "kafkajs";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const RUN_ID = `${Date.now()}-${process.pid}`;
const TOPIC = `mensageiro.test.broker-${RUN_ID}`;
const GROUP = `mensageiro-test-${RUN_ID}`;

describe("local Kafka broker", () => {
  // The broker of this run, started by test/kafka/global-setup.ts with startKafka().
  let broker: { brokers: string } | undefined;
  let kafka: Kafka;
  let producer: Producer | undefined;
  let consumer: Consumer | undefined;

  beforeAll(async () => {
    broker = { brokers: inject("kafkaBrokers") };
    kafka = new Kafka({ clientId: "mensageiro-test", brokers: [broker.brokers], logLevel: logLevel.WARN });
  }, 180_000);

  afterAll(async () => {
    await consumer?.disconnect();
    await producer?.disconnect();
  }, 60_000);

  it("serves metadata on 127.0.0.1", () => {
    expect(broker?.brokers).toMatch(/^127\.0\.0\.1:\d+(,|$)/);
  });

  it("delivers idempotently produced messages to a consumer group, in order", async () => {
    await createTopic(kafka, TOPIC);

    producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    await producer.connect();
    const values = ["first", "second", "third"];
    await producer.send({ topic: TOPIC, acks: -1, messages: values.map((value) => ({ key: "conversation-1", value })) });

    consumer = kafka.consumer({ groupId: GROUP, maxWaitTimeInMs: 100 });
    const received = await consumeMessages(consumer, TOPIC, values.length);

    expect(received.map((message) => message.value?.toString())).toEqual(values);
    expect(received.map((message) => Number(message.offset))).toEqual([0, 1, 2]);
  });
});

/** Pre-created so the first produce doesn't race KRaft's auto-creation (LEADER_NOT_AVAILABLE). */
async function createTopic(kafka: Kafka, topic: string): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 1, replicationFactor: 1 }] });
  } finally {
    await admin.disconnect();
  }
}

async function consumeMessages(consumer: Consumer, topic: string, count: number): Promise<KafkaMessage[]> {
  const received: KafkaMessage[] = [];
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`received ${received.length} of ${count} messages`)), 30_000);
    consumer
      .run({
        eachMessage: async ({ message }) => {
          received.push(message);
          if (received.length >= count) {
            clearTimeout(timer);
            resolve();
          }
        },
      })
      .catch(reject);
  });
  return received;
}
