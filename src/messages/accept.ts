// Accepting messages: checks that need the database or the clock (instance, sendAt window),
// then one D1 batch per chunk (message, history, outbox event) and the sends queue.
import type { Tenant } from "../app-env.ts";
import { MAX_SCHEDULE_DAYS, type SendMessageRequest } from "../contracts/messages.ts";
import type { SendJob } from "../contracts/send-job.ts";
import { runBatch, type Statement } from "../db/batch.ts";
import type { Db } from "../db/client.ts";
import { instances, messages } from "../db/queries/index.ts";
import { ApiError } from "../errors.ts";
import { newId, sha256Hex, stableStringify } from "../ids.ts";
import { contactKey } from "./contact-key.ts";
import { outboxStatusEvent } from "./transitions.ts";
import { errorField, log } from "../observability/log.ts";
import type { Channel } from "../providers/provider.ts";
import { channelOf, providerFor } from "../providers/registry.ts";

export type InstanceRef = { id: string; name: string; channel: Channel };
export type NewMessage = messages.NewMessage;
/** `late`: the history note of a schedule accepted after its time (ifLate: "send"). */
export type Prepared = { row: NewMessage; job: SendJob; late?: string };

/** The contact's lane: keyed by the chat, not by how its number was written (contact-key.ts). */
/** The lane of a chat: a WhatsApp number by its canonical key (both forms of a Brazilian mobile are one
 *  chat); other channels' addresses are their own key. */
export const laneKeyOf = (tenantId: string, instanceId: string, to: string, channel: Channel = "whatsapp") =>
  `${tenantId}:${instanceId}:${channel === "whatsapp" ? contactKey(to) : to}`;

// Instance ids by name, remembered per isolate (an id never changes for a name); misses are not
// remembered, so a newly registered instance is found at once.
const INSTANCE_CACHE_MS = 60_000;
const instanceCache = new Map<string, { ref: InstanceRef; at: number }>();

export async function findInstances(db: Db, tenantId: string, names: string[]): Promise<Map<string, InstanceRef>> {
  const found = new Map<string, InstanceRef>();
  const missing: string[] = [];
  for (const name of new Set(names)) {
    const hit = instanceCache.get(`${tenantId}/${name}`);
    if (hit && Date.now() - hit.at < INSTANCE_CACHE_MS) found.set(name, hit.ref);
    else missing.push(name);
  }
  for (const r of await instances.ownedByNames(db, tenantId, missing)) {
    const ref = { id: r.id, name: r.name, channel: channelOf(r.channel) };
    found.set(r.name, ref);
    instanceCache.set(`${tenantId}/${r.name}`, { ref, at: Date.now() });
  }
  return found;
}

/** The sendAt window: parseable, in the future, at most 90 days ahead. */
export function checkSendAt(sendAt: string | undefined, now: number, path = "sendAt"): number | undefined {
  if (sendAt === undefined) return undefined;
  const at = Date.parse(sendAt);
  if (at <= now) throw new ApiError("unprocessable", "sendAt must be in the future.", [{ path, message: `${sendAt} is not after now.` }]);
  if (at > now + MAX_SCHEDULE_DAYS * 86_400_000) {
    throw new ApiError("unprocessable", `sendAt must be at most ${MAX_SCHEDULE_DAYS} days ahead.`, [{ path, message: `${sendAt} is too far ahead.` }]);
  }
  return at;
}

export function prepareMessage(
  tenant: Tenant,
  instances: Map<string, InstanceRef>,
  input: SendMessageRequest,
  now: number,
  source = "api",
  pathPrefix = "",
  // An Idempotency-Key request passes the id its reservation gives this message (the same on a retry).
  id = newId("msg"),
): Prepared {
  const instance = instances.get(input.instance);
  if (!instance) {
    throw new ApiError("unprocessable", `Unknown instance "${input.instance}": register it with PUT /v1/instances/:name first.`, [
      { path: `${pathPrefix}instance`, message: "No such instance for this tenant." },
    ]);
  }
  // The instance's provider decides what an address and a content may be on its channel.
  const provider = providerFor(instance.channel);
  const addressed = provider.address(input.to);
  if (!addressed.ok) throw new ApiError("invalid_request", "The request is invalid.", [{ path: `${pathPrefix}to`, message: addressed.message }]);
  const refused = provider.refuseContent(input);
  if (refused) throw new ApiError("invalid_request", "The request is invalid.", [{ path: `${pathPrefix}${refused.path}`, message: refused.message }]);
  // A schedule that arrives after its time, from a caller that asked for delivery anyway: send now.
  const lateBy = input.sendAt !== undefined && input.ifLate === "send" ? now - Date.parse(input.sendAt) : undefined;
  const late = lateBy !== undefined && lateBy >= 0 ? `scheduled for ${input.sendAt}, arrived ${Math.round(lateBy / 1000)} s late; sent now` : undefined;
  const sendAt = late ? undefined : checkSendAt(input.sendAt, now, `${pathPrefix}sendAt`);
  const to = addressed.to;
  const laneKey = laneKeyOf(tenant.id, instance.id, to, instance.channel);
  const row: NewMessage = {
    id,
    tenantId: tenant.id,
    instanceId: instance.id,
    instanceName: instance.name,
    channel: instance.channel,
    to,
    laneKey,
    text: input.text ?? null,
    media: input.media ?? null,
    status: sendAt ? "scheduled" : "queued",
    priority: input.priority ?? 5,
    sendAt: sendAt ?? null,
    readyAt: sendAt ?? now,
    maxAttempts: input.maxAttempts ?? tenant.maxAttempts,
    metadata: input.metadata ?? null,
    callbackUrl: input.callbackUrl ?? null,
    idempotencyKey: input.idempotencyKey ?? null,
    source,
    createdAt: now,
    updatedAt: now,
    history: JSON.stringify([{ status: sendAt ? "scheduled" : "queued", at: now, attempt: null, detail: late ?? null }]),
  };
  const job: SendJob = {
    messageId: row.id,
    laneKey,
    instanceId: instance.id,
    priority: row.priority ?? 5,
    readyAt: row.readyAt,
    createdAt: now,
  };
  return late ? { row, job, late } : { row, job };
}

// The event follows only when the message row went in (an idempotency key taken by a concurrent
// request makes the insert a no-op). The row carries its first history entry.
/** A message's row and its status event, for a caller's own D1 batch (two statements, the insert
 *  first: its changes() say whether the row is new; a stored idempotency key makes it a no-op). */
export function insertStatements(db: Db, p: Prepared): Statement[] {
  const { row } = p;
  return [messages.insert(db, row), outboxStatusEvent(row.id, row.createdAt, undefined, messages.changedJustBefore)];
}

export type Replay = { id: string; status: string; instanceName: string; to: string; createdAt: number; sendAt: number | null };
export type Accepted = { kind: "created"; prepared: Prepared } | { kind: "replay"; message: Replay } | { kind: "conflict"; key: string };

type Keyed = { prepared: Prepared; input: SendMessageRequest };

async function existingByKey(db: Db, tenantId: string, keys: string[]): Promise<Map<string, Replay & { hash: string | null }>> {
  const found = new Map<string, Replay & { hash: string | null }>();
  for (const r of await messages.byIdempotencyKeys(db, tenantId, keys))
    found.set(r.key, { id: r.id, status: r.status, instanceName: r.instance_name, to: r.to, createdAt: r.created_at, sendAt: r.send_at, hash: r.hash });
  return found;
}

const replayOf = (p: Prepared): Replay => ({
  id: p.row.id,
  status: p.row.status,
  instanceName: p.row.instanceName,
  to: p.row.to,
  createdAt: p.row.createdAt,
  sendAt: p.row.sendAt ?? null,
});

/** Per-message idempotency keys, then persistAndEnqueue for what is new. One answer per entry, in order. */
/** What a repeated request with the same idempotency key must match. */
export const idempotencyHashOf = (input: SendMessageRequest) => sha256Hex(stableStringify({ ...input, idempotencyKey: undefined }));

/** How new messages reach their lanes once written: through the sends queue, or (`direct`) straight
 *  to each lane with the queue as the fallback. `defer` (the request's waitUntil) lets either finish
 *  after the answer. */
export type HandOff = { defer?: (work: Promise<unknown>) => void; direct?: boolean };

/** Statements that go into the same D1 batch as the messages: before the first, after the last. */
export type AlongWith = { first: Statement[]; last: Statement[] };

export async function acceptMessages(env: Env, db: Db, tenantId: string, entries: Keyed[], handOff: HandOff = {}, along?: AlongWith): Promise<Accepted[]> {
  const keys = entries.flatMap((e) => (e.input.idempotencyKey ? [e.input.idempotencyKey] : []));
  for (const e of entries) {
    if (e.input.idempotencyKey) e.prepared.row.idempotencyHash = await idempotencyHashOf(e.input);
  }
  const existing = keys.length ? await existingByKey(db, tenantId, keys) : new Map<string, Replay & { hash: string | null }>();
  const firstInRequest = new Map<string, Prepared>();
  const answers: Accepted[] = entries.map(({ prepared, input }) => {
    const key = input.idempotencyKey;
    if (!key) return { kind: "created", prepared };
    const hash = prepared.row.idempotencyHash;
    const prior = existing.get(key);
    if (prior) return prior.hash === hash ? { kind: "replay", message: prior } : { kind: "conflict", key };
    const earlier = firstInRequest.get(key);
    if (earlier) return earlier.row.idempotencyHash === hash ? { kind: "replay", message: replayOf(earlier) } : { kind: "conflict", key };
    firstInRequest.set(key, prepared);
    return { kind: "created", prepared };
  });
  const fresh = answers.flatMap((a) => (a.kind === "created" ? [a.prepared] : []));
  await persistAndEnqueue(env, db, fresh, handOff, along);
  if (firstInRequest.size === 0) return answers;
  // A concurrent request may have taken a key between the check and the insert: answer with its message.
  const stored = await existingByKey(db, tenantId, [...firstInRequest.keys()]);
  return answers.map((a) => {
    if (a.kind !== "created" || !a.prepared.row.idempotencyKey) return a;
    const winner = stored.get(a.prepared.row.idempotencyKey);
    if (!winner || winner.id === a.prepared.row.id) return a;
    return winner.hash === a.prepared.row.idempotencyHash ? { kind: "replay", message: winner } : { kind: "conflict", key: a.prepared.row.idempotencyKey };
  });
}

// D1 caps statements per batch; 3 statements a message keeps a chunk well inside it.
const PERSIST_CHUNK = 100;
// Queue sendBatch takes at most 100 messages.
const QUEUE_CHUNK = 100;

/** How far ahead of its time a message goes to its lane. One scheduled later waits in D1 alone (its
 *  row is the record) and the cron sweep hands it over once its time comes within this
 *  (takeComingDue). Two sweep intervals: a late or missed run still hands it over in time. A lane
 *  thus never holds work due hours or days away, and such a send costs its accept no lane call. */
export const LANE_HORIZON_MS = 2 * 60_000;

/** Whether a message goes to its lane when written: due within the horizon of its writing (the
 *  sweep's takeComingDue takes exactly the others). */
export const dueWithinHorizon = (row: { readyAt: number; createdAt: number }) => row.readyAt - row.createdAt <= LANE_HORIZON_MS;

/** Writes the messages, then hands those due within the horizon to their lanes (HandOff). A failed
 *  hand-off is not fatal: the rows are committed and the cron sweep re-enqueues them, so the
 *  hand-off may finish after the answer. */
export async function persistAndEnqueue(env: Env, db: Db, prepared: Prepared[], { defer, direct }: HandOff = {}, along?: AlongWith): Promise<void> {
  for (let i = 0; i < prepared.length; i += PERSIST_CHUNK) {
    await runBatch(db, [
      ...(i === 0 ? (along?.first ?? []) : []),
      ...prepared.slice(i, i + PERSIST_CHUNK).flatMap((p) => insertStatements(db, p)),
      ...(i + PERSIST_CHUNK >= prepared.length ? (along?.last ?? []) : []),
    ]);
  }
  const jobs = prepared.flatMap((p) => (dueWithinHorizon(p.row) ? [p.job] : []));
  if (jobs.length === 0) return;
  const enqueued = direct ? handToLanes(env, jobs) : enqueueJobs(env, jobs);
  if (defer) defer(enqueued);
  else await enqueued;
}

/** What a lane keeps of a job. */
export const laneItemOf = (job: SendJob) => ({
  messageId: job.messageId,
  instanceId: job.instanceId,
  priority: job.priority,
  readyAt: job.readyAt,
  createdAt: job.createdAt,
});

/** Straight into each job's lane, one call per lane: the queue's batching would add up to a second
 *  before the lane hears of it. The lane holds a job durably once its call returns; where the call
 *  fails, the jobs go through the sends queue instead. A copy arriving both ways is sent once (the
 *  lane ignores an id it holds; a finished one fails its claim in D1). */
export async function handToLanes(env: Env, jobs: SendJob[]): Promise<void> {
  const lanes = new Map<string, SendJob[]>();
  for (const job of jobs) lanes.set(job.laneKey, [...(lanes.get(job.laneKey) ?? []), job]);
  await Promise.all(
    [...lanes].map(async ([laneKey, group]) => {
      try {
        await env.LANES.get(env.LANES.idFromName(laneKey)).enqueue(laneKey, group.map(laneItemOf));
      } catch (err) {
        log("warn", "direct lane hand-off failed; the sends queue delivers", { laneKey, error: errorField(err) });
        await enqueueJobs(env, group);
      }
    }),
  );
}

export async function enqueueJobs(env: Env, jobs: SendJob[]): Promise<void> {
  for (let i = 0; i < jobs.length; i += QUEUE_CHUNK) {
    try {
      await env.SENDS.sendBatch(jobs.slice(i, i + QUEUE_CHUNK).map((body) => ({ body, contentType: "json" as const })));
    } catch (err) {
      log("error", "sends queue unavailable; the sweep will re-enqueue", { error: errorField(err) });
    }
  }
}
