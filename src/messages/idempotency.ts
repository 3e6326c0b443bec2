// Idempotency-Key: the same key and body answer the first answer again; the same key with
// another body is 409. The key is reserved before the work so two racing requests cannot both run.
//
// The reservation is tied to the messages its request creates: their ids are derived from the
// reservation (its time and the key), so a retry after any failure part-way (a client that left
// during Prefer: wait, a failed write of the answer, an error after the first chunk of a batch)
// rebuilds the same ids and its inserts of what already exists change nothing. A reservation is
// therefore never dropped once work may have been written; a request that died leaves a lease that
// runs out, and the next retry with the same body takes over.
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { encodeTime } from "ulid";
import type { AppEnv } from "../app-env.ts";
import type { Statement } from "../db/batch.ts";
import { idempotencyKeys } from "../db/queries/index.ts";
import { ApiError, toApiError } from "../errors.ts";
import { newId, sha256Hex, stableStringify } from "../ids.ts";
import { errorField, log } from "../observability/log.ts";
import { MAX_WAIT_SECONDS } from "./wait.ts";

export type Answer = { status: ContentfulStatusCode; body: unknown; headers?: Record<string, string> };

/** What a request's work needs from its reservation. */
export type Attempt = {
  /** The request's clock: the time of its first attempt, so a retry rebuilds the same messages. */
  now: number;
  /** The id of the request's n-th new message: the same on every attempt with this key. */
  messageId(n: number): string;
  /** Stores an answer that names what was created before a long wait, so a client that leaves
   *  during the wait gets it on its retry. The final answer replaces it. */
  provisional(answer: Answer): Promise<void>;
  /** With `inOneBatch` only: the reservation and `answer` (final, or provisional before a wait) as
   *  statements for the work's own D1 batch, so a new key costs no round trip of its own. */
  inBatch?(answer: Answer, final: boolean): { first: Statement[]; last: Statement[] };
};

// How long a request holds its reservation; past it, a retry takes over. Longer than the longest
// Prefer: wait plus the writes around it.
const LEASE_MS = (MAX_WAIT_SECONDS + 30) * 1000;

const CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz";

/** Message ids of one reservation: ULID time of its first attempt, then 12 characters from the
 *  hash of tenant, scope and key, then the item's number (4 characters, up to 1,048,575). */
export function reservationIds(createdAt: number, seedHex: string): (n: number) => string {
  let seed = "";
  for (let i = 0; i < 12; i++) seed += CROCKFORD[Number.parseInt(seedHex.slice(i * 2, i * 2 + 2), 16) % 32];
  const time = encodeTime(createdAt, 10).toLowerCase();
  return (n) => {
    let tail = "";
    for (let i = 3, v = n; i >= 0; i--, v = Math.floor(v / 32)) tail = CROCKFORD[v % 32] + tail;
    return `msg_${time}${seed}${tail}`;
  };
}

const fresh: Attempt = { now: 0, messageId: () => newId("msg"), provisional: async () => {} };

/** `inOneBatch`: the work writes in one D1 batch, whatever it answers; it then takes the reservation
 *  in that batch (Attempt.inBatch) rather than one round trip before it. */
export async function idempotent(
  c: Context<AppEnv>,
  scope: string,
  request: unknown,
  run: (attempt: Attempt) => Promise<Answer>,
  { inOneBatch = false }: { inOneBatch?: boolean } = {},
): Promise<Response> {
  const key = c.req.header("idempotency-key");
  if (key === undefined) return send(c, await run({ ...fresh, now: Date.now() }));
  if (key.length < 1 || key.length > 255) {
    throw new ApiError("invalid_request", "Idempotency-Key must be 1 to 255 characters.", [{ path: "Idempotency-Key", message: "Bad length." }]);
  }
  const db = c.var.db;
  const tenantId = c.var.tenant.id;
  const ref = { tenantId, scope, key };
  const hash = await sha256Hex(stableStringify(request));
  const now = Date.now();
  if (inOneBatch) {
    const answered = await inTheWorksBatch(c, ref, hash, now, run);
    if (answered) return answered;
  }
  let createdAt = now;
  const takeover = !(await idempotencyKeys.reserve(db, ref, hash, now, now + LEASE_MS));
  if (takeover) {
    const prior = await idempotencyKeys.find(db, ref);
    if (!prior) throw new ApiError("conflict", "Idempotency-Key is being reused concurrently; retry shortly.", [], { "retry-after": "1" });
    if (prior.request_hash !== hash) {
      throw new ApiError("conflict", "This Idempotency-Key was already used with a different request body.", [{ path: "Idempotency-Key", message: key }]);
    }
    if (prior.response_status !== null && prior.response_body !== null) {
      c.header("idempotent-replayed", "true");
      return c.body(prior.response_body, prior.response_status as ContentfulStatusCode, { "content-type": "application/json" });
    }
    const lockedUntil = prior.locked_until ?? 0;
    if (lockedUntil > now) {
      const wait = String(Math.max(1, Math.ceil((lockedUntil - now) / 1000)));
      throw new ApiError("conflict", "A request with this Idempotency-Key is still in progress; retry shortly.", [], { "retry-after": wait });
    }
    // The earlier attempt died or failed part-way: finish its work under the same ids.
    if (!(await idempotencyKeys.takeOver(db, ref, lockedUntil, now + LEASE_MS)))
      throw new ApiError("conflict", "Idempotency-Key is being reused concurrently; retry shortly.", [], { "retry-after": "1" });
    createdAt = prior.created_at;
  }
  const attempt: Attempt = {
    now: createdAt,
    messageId: reservationIds(createdAt, await sha256Hex(`${tenantId}\n${scope}\n${key}`)),
    provisional: async (answer) => {
      await idempotencyKeys.recordAnswer(db, ref, answer.status, answer.body, false);
    },
  };
  let answer: Answer;
  try {
    answer = await run(attempt);
  } catch (err) {
    if (toApiError(err) && !takeover) {
      // Refused before anything was written (validation, unknown instance): free the key so the
      // client may fix the request and use it again.
      await idempotencyKeys.release(db, ref);
    } else {
      // Part of the work may be written: keep the reservation (and with it the ids), end the lease
      // so the client's retry finishes the work at once.
      await idempotencyKeys.endLease(db, ref).catch(() => undefined);
    }
    throw err;
  }
  try {
    await idempotencyKeys.recordAnswer(db, ref, answer.status, answer.body, true);
  } catch (err) {
    // The work is done and the answer is right: give it. Unrecorded, a retry (after the lease)
    // rebuilds the same ids and gets the same messages back.
    log("warn", "idempotency answer not recorded", { requestId: c.get("requestId"), scope, error: errorField(err) });
  }
  return send(c, answer);
}

/** A new key taken in the work's own batch, with the answer. Undefined when the batch did not run
 *  or failed (a key taken before fails it, and it wrote nothing): the caller then reserves first.
 *  A batch that went in and a failure after it (the wait) leave the reservation with its answer,
 *  which the caller's path then finds and answers. */
async function inTheWorksBatch(
  c: Context<AppEnv>,
  ref: idempotencyKeys.KeyRef,
  hash: string,
  now: number,
  run: (attempt: Attempt) => Promise<Answer>,
): Promise<Response | undefined> {
  const db = c.var.db;
  // Set by inBatch (a closure TypeScript does not follow, hence the holder).
  const state: { batched: "no" | "final" | "provisional" } = { batched: "no" };
  const attempt: Attempt = {
    now,
    messageId: reservationIds(now, await sha256Hex(`${ref.tenantId}\n${ref.scope}\n${ref.key}`)),
    provisional: async (answer) => {
      if (state.batched === "no") await idempotencyKeys.recordAnswer(db, ref, answer.status, answer.body, false);
    },
    inBatch: (answer, final) => {
      state.batched = final ? "final" : "provisional";
      return {
        first: [idempotencyKeys.reserveInBatch(ref, hash, now, now + LEASE_MS)],
        last: [idempotencyKeys.answerStatement(ref, answer.status, answer.body, final)],
      };
    },
  };
  let answer: Answer;
  try {
    answer = await run(attempt);
  } catch (err) {
    // Refused before anything was written (nothing reserved either): as is.
    if (toApiError(err) || state.batched === "no") throw err;
    // A key used before (a client's retry) fails the batch by design; anything else is worth a line.
    if (!String(err instanceof Error ? err.message : err).includes("idempotency_keys"))
      log("warn", "the batch taking an idempotency key failed; reserving first", { requestId: c.get("requestId"), error: errorField(err) });
    return undefined;
  }
  // Work that answered without writing (it never asked for the statements): reserved with its answer now.
  if (state.batched === "no" && (await idempotencyKeys.reserve(db, ref, hash, now, now + LEASE_MS)))
    await idempotencyKeys.recordAnswer(db, ref, answer.status, answer.body, true);
  if (state.batched === "provisional") {
    try {
      await idempotencyKeys.recordAnswer(db, ref, answer.status, answer.body, true);
    } catch (err) {
      log("warn", "idempotency answer not recorded", { requestId: c.get("requestId"), scope: ref.scope, error: errorField(err) });
    }
  }
  return send(c, answer);
}

function send(c: Context, answer: Answer): Response {
  return c.json(answer.body as object, answer.status, answer.headers);
}
