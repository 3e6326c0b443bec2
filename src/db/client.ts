import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import * as schema from "./schema.ts";

export type Db = ReturnType<typeof build>;

const build = (d1: D1Database) => drizzle(d1, { schema });

// One client per binding: building it walks the whole schema, which every request would otherwise repeat.
const clients = new WeakMap<D1Database, Db>();

export function database(d1: D1Database): Db {
  let db = clients.get(d1);
  if (!db) {
    db = build(d1);
    clients.set(d1, db);
  }
  return db;
}

/** One trivial statement: D1 answers (the health check). */
export async function ping(db: Db): Promise<void> {
  await db.run(sql`SELECT 1`);
}
