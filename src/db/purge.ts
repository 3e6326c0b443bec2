// The retention purge's one way to delete: by key through a LIMITed select (D1 has no DELETE …
// LIMIT), page by page, within a page count and a deadline. Each table's owner names what is old.
import { type SQL, sql } from "drizzle-orm";
import type { Db } from "./client.ts";

const DELETE_PAGE = 500;

export type PurgeLimits = { pages: number; deadline: number };

export async function deleteInPages(db: Db, table: string, key: string, select: SQL, limits: PurgeLimits): Promise<number> {
  let total = 0;
  for (let page = 0; page < limits.pages && Date.now() < limits.deadline; page++) {
    const res = await db.run(sql`DELETE FROM ${sql.raw(table)} WHERE ${sql.raw(key)} IN (${select} LIMIT ${DELETE_PAGE})`);
    const n = res.meta?.changes ?? 0;
    total += n;
    if (n < DELETE_PAGE) break;
  }
  return total;
}
