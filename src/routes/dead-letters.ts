// /v1/dead-letters: messages that failed for good, listed with filters and replayed one or many
// at a time (the same replay as POST /v1/messages/:id/retry).
import { type SQL, sql } from "drizzle-orm";
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { deadLetterPage, deadLetterReplay } from "../contracts/callbacks.ts";
import { isoWithOffset } from "../contracts/messages.ts";
import { ApiError } from "../errors.ts";
import { cursorParam, encodeCursor } from "../http/cursor.ts";
import { replayFailed, type Replayable } from "../messages/replay.ts";
import { documented } from "../openapi/describe.ts";
import { iso } from "../time.ts";

// Production D1 refuses a LIKE pattern over 50 bytes; the filter becomes `%<text>%` with `\`, `%`
// and `_` escaped, so the text is held to what fits.
export const MAX_LIKE_PATTERN_BYTES = 50;
const likeEscaped = (text: string) => `%${text.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
const likeBytes = (text: string) => new TextEncoder().encode(likeEscaped(text)).byteLength;

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

function filterSql(tenantId: string, f: Filter): SQL {
  const where: SQL[] = [sql`d.tenant_id = ${tenantId}`];
  if (f.instance) where.push(sql`m.instance_name = ${f.instance}`);
  if (f.error) where.push(sql`d.error LIKE ${likeEscaped(f.error)} ESCAPE '\\'`);
  if (f.since) where.push(sql`d.at >= ${Date.parse(f.since)}`);
  if (f.until) where.push(sql`d.at <= ${Date.parse(f.until)}`);
  return sql.join(where, sql` AND `);
}

// A dead letter whose message may have gone out after all: Evolution accepted the request but its
// answer could not be read (a 2xx), or the last attempt was in doubt and Evolution could not say
// whether it went, or an earlier attempt was resent without proof. Replaying it may send it twice,
// so bulk replay leaves it out unless asked with force. A provider that cannot be asked (Telegram)
// says "may have gone out" in the error of an attempt it gave up on in doubt.
const mayHaveSentSql = sql`(d.error LIKE 'Evolution 2%' OR d.error LIKE '%could not answer%' OR d.error LIKE '%cannot tell%'
  OR d.error LIKE '%may arrive twice%' OR d.error LIKE '%may have gone out%' OR m.history LIKE '%may arrive twice%')`;

type DeadRow = {
  message_id: string;
  may_have_sent: number;
  attempts: number;
  error: string;
  at: number;
  replayed_at: number | null;
  instance_name: string;
  to: string;
  status: string;
  lane_key: string;
  instance_id: string;
  priority: number;
  created_at: number;
};

const columns = sql`d.message_id, d.attempts, d.error, d.at, d.replayed_at, m.instance_name, m."to", m.status, m.lane_key, m.instance_id, m.priority, m.created_at,
  ${mayHaveSentSql} AS may_have_sent`;

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
      const where = [filterSql(c.var.tenant.id, q)];
      if (q.replayed === "false") where.push(sql`d.replayed_at IS NULL`);
      if (q.replayed === "true") where.push(sql`d.replayed_at IS NOT NULL`);
      if (q.cursor) where.push(sql`(d.at < ${q.cursor[0]} OR (d.at = ${q.cursor[0]} AND d.message_id < ${q.cursor[1]}))`);
      const rows = await c.var.db.all<DeadRow>(sql`SELECT ${columns} FROM dead_letters d JOIN messages m ON m.id = d.message_id
    WHERE ${sql.join(where, sql` AND `)} ORDER BY d.at DESC, d.message_id DESC LIMIT ${q.limit + 1}`);
      const page = rows.slice(0, q.limit);
      const last = page.at(-1);
      const answer = { data: page.map(view), nextCursor: rows.length > q.limit && last ? encodeCursor(last.at, last.message_id) : null };
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
        const ids = [...new Set(input.ids)];
        for (let i = 0; i < ids.length; i += 50) {
          const chunk = ids.slice(i, i + 50);
          rows.push(
            ...(await db.all<DeadRow>(sql`SELECT ${columns} FROM dead_letters d JOIN messages m ON m.id = d.message_id
          WHERE d.tenant_id = ${tenantId} AND d.message_id IN (${sql.join(
            chunk.map((id) => sql`${id}`),
            sql`, `,
          )})`)),
          );
        }
        const found = new Set(rows.map((r) => r.message_id));
        const missing = input.ids.flatMap((id, index) => (found.has(id) ? [] : [{ path: `ids.${index}`, message: `No dead letter ${id}.` }]));
        if (missing.length > 0) throw new ApiError("not_found", "Some ids are not dead letters of this tenant; nothing was replayed.", missing);
      } else {
        rows = await db.all<DeadRow>(sql`SELECT ${columns} FROM dead_letters d JOIN messages m ON m.id = d.message_id
      WHERE ${filterSql(tenantId, input.filter)} AND d.replayed_at IS NULL AND m.status = 'failed'${input.force ? sql`` : sql` AND NOT ${mayHaveSentSql}`}
      ORDER BY d.at, d.message_id LIMIT ${input.limit + 1}`);
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
