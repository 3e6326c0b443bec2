// /v1/dead-letters: messages that failed for good, listed with filters and replayed one or many
// at a time (the same replay as POST /v1/messages/:id/retry).
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { deadLetterPage, deadLetterReplay } from "../contracts/callbacks.ts";
import { isoWithOffset } from "../contracts/messages.ts";
import { deadLetters } from "../db/queries/index.ts";
import { ApiError } from "../errors.ts";
import { cursorParam, encodeCursor, listPage } from "../http/cursor.ts";
import { replayFailed, type Replayable } from "../messages/replay.ts";
import { documented } from "../openapi/describe.ts";
import { iso } from "../time.ts";

// Production D1 refuses a LIKE pattern over 50 bytes; the filter becomes `%<text>%` with `\`, `%`
// and `_` escaped, so the text is held to what fits.
export const MAX_LIKE_PATTERN_BYTES = 50;
const likeBytes = (text: string) => new TextEncoder().encode(deadLetters.likeEscaped(text)).byteLength;

const filterFields = {
  instance: z.string().min(1).max(100).optional(),
  // Case-insensitive substring of the recorded error.
  error: z
    .string()
    .min(1)
    .refine((text) => likeBytes(text) <= MAX_LIKE_PATTERN_BYTES, {
      message: `At most ${MAX_LIKE_PATTERN_BYTES - 2} bytes (UTF-8; each \\, % or _ counts twice).`,
    })
    .optional(),
  since: isoWithOffset.optional(),
  until: isoWithOffset.optional(),
};
type Filter = { instance?: string; error?: string; since?: string; until?: string };

const listQuery = z.object({
  ...filterFields,
  // Replayed dead letters are kept (with replayedAt) and shown on request.
  replayed: z.enum(["true", "false", "any"]).default("false"),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: cursorParam.optional(),
});

const filterOf = (f: Filter): deadLetters.Filter => ({
  instance: f.instance,
  error: f.error,
  since: f.since ? Date.parse(f.since) : undefined,
  until: f.until ? Date.parse(f.until) : undefined,
});

type DeadRow = deadLetters.DeadRow;

const view = (r: DeadRow) => ({
  messageId: r.message_id,
  instance: r.instance_name,
  to: r.to,
  status: r.status,
  attempts: r.attempts,
  error: r.error,
  mayHaveSent: r.may_have_sent === 1,
  failedAt: iso(r.at),
  replayedAt: iso(r.replayed_at),
});

const replayable = (r: DeadRow): Replayable => ({
  id: r.message_id,
  laneKey: r.lane_key,
  instanceId: r.instance_id,
  priority: r.priority,
  createdAt: r.created_at,
});

// Newest first.
const tags = ["Dead letters"];

export const MAX_REPLAY_IDS = 100;
const MAX_REPLAY_FILTER = 500;
const idList = z.array(z.string().min(1).max(100)).min(1).max(MAX_REPLAY_IDS);
// force: also replay dead letters that may have gone out (mayHaveSent), accepting they may arrive twice.
const force = z.boolean().default(false);
const replayBody = z.union([
  z.strictObject({ ids: idList, force }),
  z.strictObject({ filter: z.strictObject(filterFields), limit: z.int().min(1).max(MAX_REPLAY_FILTER).default(100), force }),
]);

export const deadLetterRoutes = new Hono<AppEnv>()
  .get(
    "/",
    documented({
      summary: "Messages that failed for good, newest first",
      tags,
      caller: "apiKey",
      query: listQuery,
      responses: { 200: { description: "A page; pass nextCursor as cursor for the next.", schema: deadLetterPage } },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const rows = await deadLetters.page(c.var.db, c.var.tenant.id, { ...filterOf(q), replayed: q.replayed, before: q.cursor, limit: q.limit });
      const answer = listPage(rows, q.limit, view, (last) => encodeCursor(last.at, last.message_id));
      return c.json(answer satisfies z.input<typeof deadLetterPage>);
    },
  )
  // Answers how many were replayed. With ids: every id must be one of this tenant's dead letters
  // (else 404 and nothing is replayed); those no longer failed are listed under `skipped`.
  // With a filter: the oldest matching dead letters not yet replayed, at most `limit` (`more` says
  // whether more match).
  .post(
    "/replay",
    documented({
      summary: "Send dead letters again: by ids, or the oldest matching a filter",
      tags,
      caller: "apiKey",
      body: replayBody,
      responses: { 202: { description: "How many went back to their lanes; `more` says whether more match the filter.", schema: deadLetterReplay } },
      errors: ["not_found"],
    }),
    async (c) => {
      const input = c.req.valid("json");
      const db = c.var.db;
      const tenantId = c.var.tenant.id;
      let rows: DeadRow[] = [];
      let more = false;
      if ("ids" in input) {
        rows = await deadLetters.byIds(db, tenantId, [...new Set(input.ids)]);
        const found = new Set(rows.map((r) => r.message_id));
        const missing = input.ids.flatMap((id, index) => (found.has(id) ? [] : [{ path: `ids.${index}`, message: `No dead letter ${id}.` }]));
        if (missing.length > 0) throw new ApiError("not_found", "Some ids are not dead letters of this tenant; nothing was replayed.", missing);
      } else {
        rows = await deadLetters.replayable(db, tenantId, filterOf(input.filter), input.force, input.limit);
        more = rows.length > input.limit;
        rows = rows.slice(0, input.limit);
      }
      const withheld = input.force ? [] : rows.filter((r) => r.may_have_sent === 1);
      rows = rows.filter((r) => !withheld.includes(r));
      const requeued = new Set(
        await replayFailed(c.env, db, rows.map(replayable), input.force ? "replayed from dead letters (forced)" : "replayed from dead letters"),
      );
      const skipped = [
        ...withheld.map((r) => ({ id: r.message_id, reason: "may have been sent already (mayHaveSent); replay with force: true to send it again" })),
        ...rows.filter((r) => !requeued.has(r.message_id)).map((r) => ({ id: r.message_id, reason: `status is ${r.status}, not failed` })),
      ];
      const answer = { replayed: requeued.size, ids: rows.filter((r) => requeued.has(r.message_id)).map((r) => r.message_id), skipped, more };
      return c.json(answer satisfies z.input<typeof deadLetterReplay>, 202);
    },
  );
