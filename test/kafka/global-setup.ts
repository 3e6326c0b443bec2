// One real Kafka broker (KRaft, from Maven Central jars) for all Kafka tests of a run;
// KAFKA_BROKERS set → that broker is used instead.
import type { TestProject } from "vitest/node";
import { startKafka } from "../../tools/harness/kafka.ts";

declare module "vitest" {
  export interface ProvidedContext {
    kafkaBrokers: string;
  }
}

export default async function setup(project: TestProject) {
  const kafka = await startKafka();
  project.provide("kafkaBrokers", kafka.brokers);
  return async () => kafka.stop();
}
