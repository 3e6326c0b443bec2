// The older system's agent queue API (POST /api/messages and its status, stats and health), mounted
// inside the compatibility routes: their API key check, rate limit and `success: false` errors apply.
// How each maps onto automation: src/webhooks/agent-jobs.ts and docs/compat.md.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { type JobState, jobOf, postForAgent, queueFigures } from "../webhooks/agent-jobs.ts";
import { agentMessage } from "../contracts/legacy.ts";
import { ApiError } from "../errors.ts";
import { idempotent } from "../messages/idempotency.ts";
import { compatErrorSchema, documented } from "../openapi/describe.ts";

const tags = ["Compatibility"];

const counts = z
  .object({
    waiting: z.int().describe("Not called yet (a first call under way included)."),
    active: z.int().describe("Called and not answered yet: retried in its contact's line."),
    completed: z.int().describe("Answered by the handler, or kept for the person the contact was handed to."),
    failed: z.int().describe("Dead letters (every attempt failed) and those canceled with their automation."),
    delayed: z.int().describe("Always 0: the gateway holds no job for later; a retry's wait counts as active."),
    paused: z.int().describe("Waiting behind an open breaker or a switched-off automation."),
    total: z.int(),
  })
  .meta({ id: "AgentQueueCounts" });

const jobStates = ["waiting", "active", "completed", "failed"] as const satisfies readonly JobState[];

const idParam = z.object({ id: z.string().min(1).max(100).describe("The messageId POST /api/messages answered (an inbound message's id).") });

const health = z.object({
  success: z.boolean(),
  data: z.object({
    healthy: z.boolean(),
    stats: counts,
    reasons: z.array(z.string()).describe("Why it is not healthy: the instances whose automation breaker is open."),
  }),
});

export const agentQueueRoutes = new Hono<AppEnv>()
  // Before /:id/status: "queue" is not a message id.
  .get(
    "/queue/stats",
    documented({
      summary: "The agent queue's counts (older system format)",
      description: "The tenant's automation delivery records by state, from counters: see docs/compat.md.",
      tags,
      caller: "apiKey",
      responses: { 200: { description: "The counts.", schema: z.object({ success: z.literal(true), data: counts }) } },
      errorBody: compatErrorSchema,
    }),
    async (c) => {
      const { counts } = await queueFigures(c.var.db, c.var.tenant.id);
      return c.json({ success: true, data: counts });
    },
  )
  .get(
    "/queue/health",
    documented({
      summary: "The agent queue's health (older system format)",
      description: "503 while the automation breaker of one of the tenant's instances is open (its handler kept failing); 200 otherwise.",
      tags,
      caller: "apiKey",
      responses: {
        200: { description: "Healthy.", schema: health },
        503: { description: "A breaker is open.", schema: health },
      },
      errorBody: compatErrorSchema,
    }),
    async (c) => {
      const { counts, pausedInstances } = await queueFigures(c.var.db, c.var.tenant.id);
      const healthy = pausedInstances.length === 0;
      const reasons = pausedInstances.map((name) => `The automation breaker of instance "${name}" is open: its handler keeps failing.`);
      return c.json({ success: healthy, data: { healthy, stats: counts, reasons } }, healthy ? 200 : 503);
    },
  )
  .get(
    "/:id/status",
    documented({
      summary: "A message's job state (older system format)",
      description:
        "From the automation delivery record of the inbound message: pending → waiting (or active once called), answered → completed, dead → failed.",
      tags,
      caller: "apiKey",
      params: idParam,
      responses: {
        200: {
          description: "The job.",
          schema: z.object({
            success: z.literal(true),
            data: z.looseObject({
              messageId: z.string(),
              state: z.enum(jobStates),
              progress: z.union([z.literal(0), z.literal(50), z.literal(100)]),
              finishedOn: z.number().nullable().describe("Epoch ms, once completed or failed."),
              attemptsMade: z.int(),
              failedReason: z.string().nullable(),
              conversationId: z.string(),
            }),
          }),
        },
      },
      errors: ["not_found"],
      errorBody: compatErrorSchema,
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const job = await jobOf(c.env, c.var.db, c.var.tenant.id, id);
      if (!job) throw new ApiError("not_found", `No message ${id}.`);
      return c.json({ success: true, data: job });
    },
  )
  .post(
    "/",
    documented({
      summary: "A user's message for the agent (older system format)",
      description:
        "Stored as an inbound message of the channel's instance from the contact, and offered to that instance's automation (the agent), " +
        "whose replies go back on the channel. The instance: channelMetadata.instance, else the tenant's only instance of the channel. " +
        "The contact: channelMetadata.contact (visitorId, phoneNumber, chatId), else conversationId; a web message with neither starts a new visitor.",
      tags,
      caller: "apiKey",
      body: agentMessage,
      headers: { "Idempotency-Key": "As on POST /v1/messages." },
      responses: {
        202: {
          description: "Queued for the agent.",
          schema: z.object({
            success: z.literal(true),
            message: z.string(),
            data: z.looseObject({
              messageId: z.string(),
              conversationId: z.string().describe("The contact: send it back to continue the conversation."),
              jobId: z.string().describe("The messageId: jobs are the messages' automation records."),
              status: z.literal("queued"),
              estimatedTime: z.int().describe("Seconds until the handler is called: the automation's debounce, or an open breaker's next probe."),
            }),
          }),
        },
      },
      errors: ["conflict", "unprocessable", "unavailable"],
      errorBody: compatErrorSchema,
    }),
    async (c) => {
      const input = c.req.valid("json");
      const body = await c.req.json();
      return idempotent(c, "compat/agent-message", body, async (attempt) => {
        // With an Idempotency-Key the id is the reservation's: a retry stores nothing twice.
        const job = await postForAgent(c.env, c.var.db, c.var.tenant.id, input, attempt.messageId(0), attempt.now);
        return {
          status: 202,
          body: {
            success: true,
            message: "Mensagem enfileirada para processamento",
            data: {
              messageId: job.messageId,
              conversationId: job.conversationId,
              jobId: job.messageId,
              status: "queued",
              estimatedTime: job.estimatedSeconds,
              instance: job.instance,
              channel: job.channel,
            },
          },
        };
      });
    },
  );
