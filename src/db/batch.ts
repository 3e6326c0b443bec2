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
