// Group commit: concurrent writes of one isolate share a D1 batch; a failing one fails only itself.
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { database } from "../../src/db/client.ts";
import { WriteGroup } from "../../src/db/write-group.ts";

// The database as the group sees it, counting the batches it is sent.
function countingDb() {
  const counted = { batches: 0 };
  const d1 = {
    prepare: (query: string) => env.DB.prepare(query),
    batch: (statements: D1PreparedStatement[]) => {
      counted.batches++;
      return env.DB.batch(statements);
    },
  } as unknown as D1Database;
  return { db: database(d1), counted };
}

const insert = (id: string, n: number | null) => sql`INSERT INTO write_group_probe (id, n) VALUES (${id}, ${n})`;
const stored = async (prefix: string) =>
  (await env.DB.prepare("SELECT id FROM write_group_probe WHERE id LIKE ? ORDER BY id").bind(`${prefix}%`).all<{ id: string }>()).results.map((r) => r.id);

beforeAll(async () => {
  await env.DB.exec("CREATE TABLE IF NOT EXISTS write_group_probe (id TEXT PRIMARY KEY, n INTEGER NOT NULL)");
});

describe("WriteGroup", () => {
  it("writes what arrives while a batch is in flight in one next batch, and settles each writer once its rows are in", async () => {
    const { db, counted } = countingDb();
    const group = new WriteGroup();
    const ids = Array.from({ length: 20 }, (_, i) => `a-${String(i).padStart(2, "0")}`);
    await Promise.all(
      ids.map(async (id, i) => {
        await group.write(db, [insert(id, i)]);
        // Committed by the time the writer goes on.
        expect(await stored(id)).toEqual([id]);
      }),
    );
    expect(await stored("a-")).toEqual(ids);
    // The first went at once; the 19 that came during it, together.
    expect(counted.batches).toBe(2);
  });

  it("fails only the writer whose statement fails; the others of its batch are written", async () => {
    const { db } = countingDb();
    const group = new WriteGroup();
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => group.write(db, [insert(`b-${i}`, i === 6 ? null : i)])));
    expect(results.map((r) => r.status)).toEqual([...Array(6).fill("fulfilled"), "rejected", ...Array(3).fill("fulfilled")]);
    expect(await stored("b-")).toEqual(["b-0", "b-1", "b-2", "b-3", "b-4", "b-5", "b-7", "b-8", "b-9"]);
  });
});
