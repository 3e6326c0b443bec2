// One D1 batch (one implicit transaction) from drizzle SQL fragments and query builders.
// drizzle's own db.batch() cannot take raw `sql` with parameters (SQLiteRaw has no prepared
// statement), and the transitions need raw SQL for their changes() guards.
import type { SQL } from "drizzle-orm";
import { SQLiteAsyncDialect } from "drizzle-orm/sqlite-core";
import type { Db } from "./client.ts";

const dialect = new SQLiteAsyncDialect();

export type Statement = SQL | { toSQL(): { sql: string; params: unknown[] } };

function prepare(d1: D1Database, statement: Statement): D1PreparedStatement {
  const { sql, params } = "toSQL" in statement ? statement.toSQL() : dialect.sqlToQuery(statement);
  return d1.prepare(sql).bind(...params);
}

export async function runBatch<T = Record<string, unknown>>(db: Db, statements: Statement[]): Promise<D1Result<T>[]> {
  if (statements.length === 0) return [];
  const d1 = db.$client;
  return d1.batch<T>(statements.map((s) => prepare(d1, s)));
}

export const changes = (result: D1Result | undefined) => result?.meta?.changes ?? 0;

/** One batch of named groups of statements; the answer is keyed by the same names, so callers
 *  never count positions in the result list. */
export async function runNamed<K extends string>(db: Db, groups: Record<K, Statement | Statement[]>): Promise<Record<K, D1Result[]>> {
  const names = Object.keys(groups) as K[];
  const lists = names.map((name) => {
    const group: Statement | Statement[] = groups[name];
    return Array.isArray(group) ? group : [group];
  });
  const results = await runBatch(db, lists.flat());
  const named = {} as Record<K, D1Result[]>;
  let at = 0;
  names.forEach((name, i) => {
    const size = lists[i]?.length ?? 0;
    named[name] = results.slice(at, at + size);
    at += size;
  });
  return named;
}

/** True when the first statement of a group (a transition's UPDATE) changed a row. */
export const applied = (group: D1Result[] | undefined) => changes(group?.[0]) > 0;

/** The first row of a group's first statement. */
export const firstRow = <T>(group: D1Result[] | undefined): T | undefined => group?.[0]?.results[0] as T | undefined;
