// /v1/instances/:name/automation — an instance's inbound automation (the handler URL and its
// settings), its counts and breaker state, secret rotation, and its dead letters with replay. A
// signing secret is shown once: when the automation is created, and when it is rotated.
import { Hono, type Context } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { automationLane, breakerOf, loadAutomation, signingSecrets, type AutomationConfig } from "../automation/config.ts";
import { itemOf, replyAddress } from "../automation/offer.ts";
import { automationInput, rotatedAutomationSecret } from "../contracts/automation.ts";
import { ROTATION_OVERLAP_MS } from "../callbacks/keys.ts";
import { runBatch } from "../db/batch.ts";
import { automationDeliveries, automationParked, automations, instances } from "../db/queries/index.ts";
import { ApiError } from "../errors.ts";
import { listPage } from "../http/cursor.ts";
import { refusePrivateUrl } from "../http/outbound-url.ts";
import { documented } from "../openapi/describe.ts";
import { errorField, log } from "../observability/log.ts";
import { newWebhookSecret } from "../signing/standard-webhooks.ts";
import { iso } from "../time.ts";

const tags = ["Automation"];
const instanceParams = z.object({ name: z.string().describe("The instance's name.") });
const countsAnswer = z.object({ pending: z.int(), retrying: z.int(), delivered: z.int(), dead: z.int() });
const automationAnswer = z.object({
  instance: z.string(),
  url: z.string(),
  enabled: z.boolean(),
  timeoutMs: z.int(),
  contextMessages: z.int(),
  debounceMs: z.int(),
  includeGroups: z.boolean(),
  maxAttempts: z.int(),
  state: z.enum(["active", "paused"]),
  breaker: z.enum(["closed", "paused", "probing"]).describe("closed: calls flow; paused: waiting for probeAt; probing: one call is testing the handler."),
  consecutiveFailures: z.int(),
  pausedAt: z.string().optional(),
  probeAt: z.string().optional(),
  previousSecretValidUntil: z.string().optional().describe("After a rotation: until then calls are signed by the previous secret too."),
  counts: countsAnswer,
  secret: z.string().optional().describe("whsec_… signing secret: shown once, when the automation is created."),
});

type Counts = { pending: number; retrying: number; delivered: number; dead: number };

async function instanceOf(c: Context<AppEnv>): Promise<{ id: string; name: string }> {
  const name = c.req.param("name") ?? "";
  const row = await instances.ownedByName(c.var.db, c.var.tenant.id, name);
  if (!row) throw new ApiError("not_found", `No instance ${name}.`);
  return { id: row.id, name: row.name };
}

async function countsOf(c: Context<AppEnv>, instanceId: string): Promise<Counts> {
  const rows = await automationDeliveries.countsByStatus(c.var.db, instanceId);
  const counts: Counts = { pending: 0, retrying: 0, delivered: 0, dead: 0 };
  for (const r of rows) {
    if (r.status === "pending") counts[r.retrying ? "retrying" : "pending"] += r.n;
    else if (r.status === "delivered" || r.status === "dead") counts[r.status] += r.n;
  }
  return counts;
}

const view = (instance: string, a: AutomationConfig) => ({
  instance,
  url: a.url,
  enabled: a.enabled,
  timeoutMs: a.timeoutMs,
  contextMessages: a.contextMessages,
  debounceMs: a.debounceMs,
  includeGroups: a.includeGroups,
  maxAttempts: a.maxAttempts,
  state: a.state,
  breaker: breakerOf(a),
  consecutiveFailures: a.failures,
  pausedAt: iso(a.pausedAt),
  probeAt: a.state === "paused" ? iso(a.probeAt) : undefined,
  previousSecretValidUntil: signingSecrets(a).length > 1 ? iso(a.previousSecretUntil) : undefined,
});

// Lanes with waiting messages run now: after re-enabling, or a change of settings.
async function kickPending(c: Context<AppEnv>, instanceId: string): Promise<void> {
  const lanes = await automationDeliveries.pendingLanes(c.var.db, instanceId);
  await Promise.all(lanes.map((laneKey) => automationLane(c.env, laneKey).kick()));
}

const deadQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  // Opaque cursor: "<updatedAt>:<inbound id>" of the last item seen.
  cursor: z
    .string()
    .regex(/^\d+:in_[0-9a-z]+$/, "Not a cursor from this API.")
    .optional(),
});

const deadLetterPage = z.object({
  data: z.array(
    z.object({
      inboundId: z.string(),
      contact: z.string(),
      text: z.string().nullable(),
      attempts: z.int(),
      error: z.string().nullable(),
      failedAt: z.string().optional(),
    }),
  ),
  nextCursor: z.string().nullable(),
});

export const automationRoutes = new Hono<AppEnv>()
  .put(
    "/:name/automation",
    documented({
      summary: "Hand this instance's inbound messages to a handler (n8n, an AI agent)",
      description:
        "Each inbound message is POSTed to url, signed by the Standard Webhooks scheme, one call at a time per contact, in order; " +
        "the handler's replies go back to the contact as ordinary messages. See the README's Automation section.",
      tags,
      caller: "apiKey",
      params: instanceParams,
      body: automationInput,
      responses: { 200: { description: "The configuration; on creation with its secret (shown once).", schema: automationAnswer } },
      errors: ["not_found", "conflict"],
    }),
    async (c) => {
      const instance = await instanceOf(c);
      const input = c.req.valid("json");
      refusePrivateUrl(c.env, input.url, "url");
      const now = Date.now();
      const secret = newWebhookSecret();
      // Insert or update in one statement; the secret only goes in on creation.
      const created = await automations.save(c.var.db, { instanceId: instance.id, tenantId: c.var.tenant.id, secret, now, ...input });
      const saved = await loadAutomation(c.var.db, instance.id);
      if (!saved) throw new ApiError("conflict", "The automation was deleted concurrently; retry.");
      if (!created) c.executionCtx.waitUntil(kickPending(c, instance.id));
      else c.header("cache-control", "no-store");
      return c.json({ ...view(instance.name, saved), counts: await countsOf(c, instance.id), ...(created ? { secret } : {}) }, 200);
    },
  )
  .get(
    "/:name/automation",
    documented({
      summary: "This instance's automation, with its delivery counts",
      tags,
      caller: "apiKey",
      params: instanceParams,
      responses: { 200: { description: "The configuration and counts.", schema: automationAnswer.omit({ secret: true }) } },
      errors: ["not_found"],
    }),
    async (c) => {
      const instance = await instanceOf(c);
      const saved = await loadAutomation(c.var.db, instance.id);
      if (!saved) throw new ApiError("not_found", `Instance ${instance.name} has no automation.`);
      return c.json({ ...view(instance.name, saved), counts: await countsOf(c, instance.id) });
    },
  )
  .delete(
    "/:name/automation",
    documented({
      summary: "Stop handing this instance's inbound messages to a handler",
      tags,
      caller: "apiKey",
      params: instanceParams,
      responses: { 204: { description: "Removed; pending hand-offs are canceled." } },
      errors: ["not_found"],
    }),
    async (c) => {
      const instance = await instanceOf(c);
      const now = Date.now();
      const [removed] = await runBatch(c.var.db, [
        automations.remove(instance.id),
        automationDeliveries.cancelPending(instance.id, now),
        automationParked.forget(c.var.db, instance.id),
      ]);
      if ((removed?.meta?.changes ?? 0) === 0) throw new ApiError("not_found", `Instance ${instance.name} has no automation.`);
      return c.body(null, 204);
    },
  )
  // The new secret is shown once; for 24 h calls carry signatures by both, so the handler can switch
  // to the new one at its own pace. A second rotation within the overlap drops the oldest secret.
  .post(
    "/:name/automation/secret/rotate",
    documented({
      summary: "Rotate the automation's signing secret",
      description: "The new secret is shown once; for 24 hours handler calls carry signatures by both the new and the previous secret.",
      tags,
      caller: "apiKey",
      params: instanceParams,
      responses: { 200: { description: "The new whsec_ secret.", schema: rotatedAutomationSecret } },
      errors: ["not_found"],
    }),
    async (c) => {
      const instance = await instanceOf(c);
      const secret = newWebhookSecret();
      const now = Date.now();
      const until = now + ROTATION_OVERLAP_MS;
      if (!(await automations.rotateSecret(c.var.db, instance.id, secret, until, now)))
        throw new ApiError("not_found", `Instance ${instance.name} has no automation.`);
      c.header("cache-control", "no-store");
      return c.json({ secret, previousSecretValidUntil: new Date(until).toISOString(), rotatedAt: new Date(now).toISOString() } satisfies z.input<
        typeof rotatedAutomationSecret
      >);
    },
  )
  .get(
    "/:name/automation/dead-letters",
    documented({
      summary: "Inbound messages the handler never took (after maxAttempts)",
      tags,
      caller: "apiKey",
      params: instanceParams,
      query: deadQuery,
      responses: { 200: { description: "Newest first, with a cursor.", schema: deadLetterPage } },
      errors: ["not_found"],
    }),
    async (c) => {
      const instance = await instanceOf(c);
      const q = c.req.valid("query");
      const before: [number, string] = q.cursor ? [Number(q.cursor.split(":")[0]), q.cursor.split(":")[1] ?? ""] : [Number.MAX_SAFE_INTEGER, "~"];
      const rows = await automationDeliveries.deadPage(c.var.db, instance.id, before, q.limit);
      return c.json(
        listPage(
          rows,
          q.limit,
          (r) => ({ inboundId: r.inbound_id, contact: r.contact, text: r.text, attempts: r.attempts, error: r.last_error, failedAt: iso(r.updated_at) }),
          (last) => `${last.updated_at}:${last.inbound_id}`,
        ),
      );
    },
  )
  .post(
    "/:name/automation/dead-letters/:inboundId/replay",
    documented({
      summary: "Hand an automation dead letter to the handler again",
      description: "It goes back into its contact's automation lane, behind what that contact already has waiting.",
      tags,
      caller: "apiKey",
      params: instanceParams.extend({ inboundId: z.string().describe("The inbound message's id (in_…).") }),
      responses: { 202: { description: "Pending again.", schema: z.object({ inboundId: z.string(), status: z.literal("pending") }) } },
      errors: ["not_found", "conflict", "unavailable"],
    }),
    async (c) => {
      const instance = await instanceOf(c);
      const inboundId = c.req.param("inboundId");
      const row = await automationDeliveries.forReplay(c.var.db, instance.id, inboundId);
      if (!row) throw new ApiError("not_found", `No automation dead letter ${inboundId}.`);
      if (row.status !== "dead") throw new ApiError("conflict", `Inbound message ${inboundId} is ${row.status}, not a dead letter.`);
      if (!(await loadAutomation(c.var.db, instance.id))) throw new ApiError("conflict", `Instance ${instance.name} has no automation to replay to.`);
      // The lane first, the record after: a failed call leaves the dead letter as it was (replayable
      // again), never `pending` with nothing in a lane. The lane may answer it before the record is
      // written (it then writes `delivered` over `dead`), so the record changes only if nobody touched it.
      const waiting = await automationLane(c.env, row.lane_key)
        .replay(
          {
            laneKey: row.lane_key,
            tenantId: row.tenant_id,
            instanceId: instance.id,
            instanceName: row.instance_name,
            contact: row.contact,
            replyTo: replyAddress(row.contact, row.remote_jid),
          },
          itemOf(row),
        )
        .catch((err) => {
          log("warn", "automation replay could not reach the lane", { laneKey: row.lane_key, error: errorField(err) });
          throw new ApiError("unavailable", "The contact's automation lane could not be reached; the dead letter is unchanged, retry.");
        });
      if (!waiting) throw new ApiError("conflict", `Inbound message ${inboundId} was already handled by its lane.`);
      const now = Date.now();
      await automationDeliveries.markReplayed(c.var.db, inboundId, row.updated_at, now);
      return c.json({ inboundId, status: "pending" }, 202);
    },
  );
