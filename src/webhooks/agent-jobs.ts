// The older system's agent queue (a Bull job per user message: the agent fetched the history, called
// an n8n workflow, and its answer went back on the channel) mapped onto automation. A job is an
// inbound message of one of the tenant's instances, posted as if its contact wrote it and offered to
// the instance's automation by the same path as the providers' inbound messages; its state is the
// automation delivery record of that message, and the queue's figures are the records' counts
// (automation_counts, kept by triggers).
import { type AgentMessage, legacyRecipient } from "../contracts/legacy.ts";
import type { Db } from "../db/client.ts";
import { inboundMessages, instances } from "../db/queries/index.ts";
import { ApiError } from "../errors.ts";
import { newId } from "../ids.ts";
import { contactKey } from "../messages/contact-key.ts";
import { errorField, log } from "../observability/log.ts";
import type { Channel } from "../providers/provider.ts";
import { channelOf, providerFor } from "../providers/registry.ts";
import { automationLane } from "../automation/config.ts";
import { storeInbound } from "./apply.ts";

type Target = instances.AgentTarget;

export type PostedJob = { messageId: string; conversationId: string; instance: string; channel: Channel; estimatedSeconds: number };

/** Stores the message as an inbound message of the chosen instance from the chosen contact and
 *  offers it to the instance's automation. `providerId` names the message for dedupe: the same id
 *  (an Idempotency-Key's retry) stores and offers nothing new and answers the first message's id. */
export async function postForAgent(env: Env, db: Db, tenantId: string, input: AgentMessage, providerId: string, now: number): Promise<PostedJob> {
  const target = await targetOf(db, tenantId, input);
  const channel = channelOf(target.channel);
  if (target.enabled !== 1) {
    throw new ApiError(
      "unprocessable",
      `Instance "${target.name}" has no automation switched on, so nothing would answer: set one with PUT /v1/instances/${target.name}/automation.`,
      [{ path: "channelMetadata.instance", message: target.name }],
    );
  }
  const { address, path } = contactOf(input, channel);
  const addressed = providerFor(channel).address(address);
  if (!addressed.ok) throw new ApiError("invalid_request", "The request is invalid.", [{ path, message: addressed.message }]);
  if (addressed.to.endsWith("@g.us")) {
    throw new ApiError("unprocessable", "A message for the agent comes from one person, not a group.", [{ path, message: addressed.to }]);
  }
  // WhatsApp chats are keyed by one form of the number (its lane, its timeline); replies go to the number as given.
  const contact = channel === "whatsapp" ? contactKey(addressed.to) : addressed.to;
  const md = input.channelMetadata;
  const metadata = {
    source: "api/messages",
    ...(input.agentId !== undefined ? { agentId: input.agentId } : {}),
    ...(input.priority !== undefined ? { priority: input.priority } : {}),
    ...(md ? { channelMetadata: md } : {}),
  };
  const [stored] = await storeInbound(
    env,
    db,
    { tenantId, instanceId: target.id, instanceName: target.name, channel },
    [
      {
        dedupeKey: `api:${providerId}`,
        kind: "message",
        contact,
        replyTo: addressed.to,
        chat: addressed.to,
        participant: null,
        providerMessageId: providerId,
        pushName: typeof md?.name === "string" ? md.name : null,
        messageType: "text",
        text: input.message,
        media: null,
        isGroup: false,
        timestamp: now,
        metadata,
      },
    ],
    now,
  );
  if (!stored?.id) throw new ApiError("unavailable", "The message could not be stored; send it again.");
  // The handler is called once the debounce has passed, or once a paused breaker's probe is due.
  const waitMs = target.state === "paused" ? Math.max(0, (target.probe_at ?? now) - now) : (target.debounce_ms ?? 0);
  return { messageId: stored.id, conversationId: contact, instance: target.name, channel, estimatedSeconds: Math.ceil(waitMs / 1000) };
}

// The instance named in channelMetadata.instance, else the tenant's only instance of the channel
// ("api": of any channel).
async function targetOf(db: Db, tenantId: string, input: AgentMessage): Promise<Target> {
  const named = input.channelMetadata?.instance;
  const channel = input.channel === "api" ? undefined : input.channel;
  if (named !== undefined) {
    const row = await instances.agentTargetByName(db, tenantId, named);
    if (!row) {
      throw new ApiError("unprocessable", `Unknown instance "${named}": register it with PUT /v1/instances/:name first.`, [
        { path: "channelMetadata.instance", message: named },
      ]);
    }
    if (channel && channelOf(row.channel) !== channel) {
      throw new ApiError("unprocessable", `Instance "${named}" is a ${channelOf(row.channel)} instance, not ${channel}.`, [
        { path: "channel", message: `Use "${channelOf(row.channel)}" or "api".` },
      ]);
    }
    return row;
  }
  // The tenant's instances of the channel: through (tenant_id, name); two are enough to know it is not one.
  const rows = await instances.agentTargets(db, tenantId, channel);
  const what = channel ? `${channel} instance` : "instance";
  if (rows.length === 0) {
    throw new ApiError("unprocessable", `The tenant has no ${what}: register one with PUT /v1/instances/:name.`, [{ path: "channel", message: input.channel }]);
  }
  if (rows.length > 1) {
    throw new ApiError("unprocessable", `The tenant has several ${what}s: name one in channelMetadata.instance.`, [
      { path: "channelMetadata.instance", message: "Required when the channel has several instances." },
    ]);
  }
  return rows[0] as Target;
}

// Who writes: channelMetadata.contact (or the channel's own name for it), else conversationId; a web
// visitor with neither starts a new conversation.
function contactOf(input: AgentMessage, channel: Channel): { address: string; path: string } {
  const md = input.channelMetadata;
  const given: [unknown, string][] = [
    [md?.contact, "channelMetadata.contact"],
    [md?.visitorId, "channelMetadata.visitorId"],
    [md?.phoneNumber, "channelMetadata.phoneNumber"],
    [md?.chatId, "channelMetadata.chatId"],
    [input.conversationId, "conversationId"],
  ];
  const found = given.find(([v]) => v !== undefined);
  if (found) {
    const raw = String(found[0]);
    return { address: channel === "whatsapp" ? legacyRecipient(raw) : raw, path: found[1] };
  }
  if (channel === "web") return { address: newId("visitor"), path: "conversationId" };
  throw new ApiError("unprocessable", "Name who writes: conversationId, or channelMetadata.contact.", [
    { path: "conversationId", message: `Required for a ${channel} instance.` },
  ]);
}

export type JobState = "waiting" | "active" | "completed" | "failed";

export type JobView = {
  messageId: string;
  state: JobState;
  progress: 0 | 50 | 100;
  finishedOn: number | null;
  attemptsMade: number;
  failedReason: string | null;
  instance: string;
  channel: Channel;
  conversationId: string;
  metadata: Record<string, unknown> | null;
};

type JobRow = inboundMessages.AgentJobRow;

/** The job of an inbound message of the tenant: its automation record's state. undefined: none. */
export async function jobOf(env: Env, db: Db, tenantId: string, id: string): Promise<JobView | undefined> {
  const row = await inboundMessages.agentJob(db, tenantId, id);
  if (!row) return undefined;
  const state = await stateOf(env, row);
  const finished = state === "completed" || state === "failed";
  return {
    messageId: row.id,
    state,
    progress: state === "waiting" ? 0 : state === "active" ? 50 : 100,
    finishedOn: finished ? (row.updated_at ?? null) : null,
    attemptsMade: row.attempts ?? 0,
    failedReason:
      state !== "failed" ? null : row.status === null ? "Not handed to an automation: none was switched on when it arrived." : (row.last_error ?? row.status),
    instance: row.instance_name,
    channel: channelOf(row.channel),
    conversationId: row.contact,
    metadata: parseObject(row.metadata),
  };
}

async function stateOf(env: Env, row: JobRow): Promise<JobState> {
  switch (row.status) {
    case "pending": {
      // Called and not answered yet: retried in its contact's line.
      if ((row.attempts ?? 0) > 0) return "active";
      if (!row.lane_key) return "waiting";
      // A first call is not in D1: the contact's lane counts it before calling (a batch formed but
      // not called, e.g. behind an open breaker, has none yet).
      try {
        const { batch } = await automationLane(env, row.lane_key).snapshot();
        return batch && batch.attempts > 0 && parseIds(batch.item_ids).includes(row.id) ? "active" : "waiting";
      } catch (err) {
        log("warn", "automation lane snapshot failed; the job shows as waiting", { laneKey: row.lane_key, error: errorField(err) });
        return "waiting";
      }
    }
    // Answered; or kept for the person the contact was handed to (the handler is done with it).
    case "delivered":
    case "human":
      return "completed";
    default:
      // dead, canceled (the automation was removed), or never handed to one.
      return "failed";
  }
}

export type QueueCounts = { waiting: number; active: number; completed: number; failed: number; delayed: number; paused: number; total: number };
export type QueueFigures = { counts: QueueCounts; pausedInstances: string[] };

/** The tenant's queue figures: one counter row per instance, and each instance's breaker. */
export async function queueFigures(db: Db, tenantId: string): Promise<QueueFigures> {
  const rows = await instances.automationCounts(db, tenantId);
  const counts: QueueCounts = { waiting: 0, active: 0, completed: 0, failed: 0, delayed: 0, paused: 0, total: 0 };
  const pausedInstances: string[] = [];
  for (const r of rows) {
    const breakerOpen = r.state === "paused";
    if (breakerOpen) pausedInstances.push(r.name);
    // Nothing is called for an instance whose breaker is open or whose automation is switched off.
    if (breakerOpen || r.enabled === 0) counts.paused += (r.waiting ?? 0) + (r.retrying ?? 0);
    else {
      counts.waiting += r.waiting ?? 0;
      counts.active += r.retrying ?? 0;
    }
    counts.completed += (r.delivered ?? 0) + (r.human ?? 0);
    counts.failed += (r.dead ?? 0) + (r.canceled ?? 0);
  }
  counts.total = counts.waiting + counts.active + counts.completed + counts.failed + counts.delayed + counts.paused;
  return { counts, pausedInstances };
}

function parseIds(json: string): string[] {
  const parsed: unknown = JSON.parse(json);
  return Array.isArray(parsed) ? parsed.filter((v): v is string => typeof v === "string") : [];
}

function parseObject(json: string | null): Record<string, unknown> | null {
  if (!json) return null;
  const parsed: unknown = JSON.parse(json);
  return parsed && typeof parsed === "object" && !Array.isArray(parsed) ? Object.fromEntries(Object.entries(parsed)) : null;
}
