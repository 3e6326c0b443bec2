// Worker tests inside workerd (D1, Queues, Durable Objects for real); unit tests of pure functions in
// plain Node; Node tests for what runs outside the Worker (the simulator, end-to-end runs); the Kafka bridge.
import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig, defineProject } from "vitest/config";

export default defineConfig(async () => {
  const migrations = await readD1Migrations(path.join(import.meta.dirname, "migrations"));
  return {
    test: {
      projects: [
        defineProject({
          plugins: [
            cloudflareTest({
              wrangler: { configPath: "./wrangler.toml" },
              miniflare: {
                bindings: {
                  TEST_MIGRATIONS: migrations,
                  ADMIN_TOKEN: "test-admin-token",
                  METRICS_TOKEN: "test-metrics-token",
                  WEB_CHAT_SECRET: "test-web-chat-secret-0123456789abcdef",
                  RETRY_BASE_MS: "60000",
                  EVOLUTION_TIMEOUT_MS: "3000",
                  // Automation retries and probes wait on alarms the tests fire themselves.
                  AUTOMATION_RETRY_BASE_MS: "60000",
                  AUTOMATION_PROBE_MS: "60000",
                  PUBLIC_URL: "https://gateway.test",
                  // The simulator listens on 127.0.0.1 (src/http/outbound-url.ts).
                  ALLOW_PRIVATE_URLS: "true",
                },
              },
            }),
          ],
          test: {
            name: "worker",
            include: ["test/worker/**/*.test.ts"],
            setupFiles: [
              "./test/worker/apply-migrations.ts",
              "./test/worker/production-limits-setup.ts",
              "./test/worker/outbox-contract-setup.ts",
              "./test/worker/settle-setup.ts",
            ],
            globalSetup: ["./test/worker/global-setup.ts"],
            testTimeout: 30_000,
            // Each file runs in its own runtime, mostly waiting on alarms, the simulator and D1:
            // two at a time even on a 2-core machine (Vitest's default there is one). A project of
            // its own size runs in its own group: first these, then the others.
            maxWorkers: 2,
            sequence: { groupOrder: 0 },
          },
        }),
        defineProject({
          test: {
            // Pure functions (no cloudflare:* module): plain Node, in parallel, no runtime to start.
            name: "unit",
            sequence: { groupOrder: 1 },
            environment: "node",
            include: ["test/unit/**/*.test.ts"],
          },
        }),
        defineProject({
          test: {
            name: "node",
            sequence: { groupOrder: 1 },
            environment: "node",
            include: ["simulator/**/*.test.ts", "scripts/**/*.test.ts", "test/e2e/**/*.test.ts", "test/browser/**/*.test.ts"],
            testTimeout: 120_000,
            hookTimeout: 240_000,
            // These tests start real processes (wrangler dev): one file at a time.
            fileParallelism: false,
          },
        }),
        defineProject({
          test: {
            name: "kafka",
            sequence: { groupOrder: 1 },
            environment: "node",
            include: ["test/kafka/**/*.test.ts", "bridge/**/*.test.ts"],
            globalSetup: ["./test/kafka/global-setup.ts"],
            env: { KAFKAJS_NO_PARTITIONER_WARNING: "1" },
            testTimeout: 180_000,
            hookTimeout: 240_000,
            fileParallelism: false,
          },
        }),
      ],
    },
  };
});
