// The platform meter of `npm run bench:cost`. It is copied beside a tree's Worker (this one, or an
// earlier release's) and wraps the bindings the Worker is given, so the same count is taken of any
// version without changing its code: D1 statements, round trips and the rows and time D1 reports
// in each result's `meta`; Durable Object requests (RPC calls, alarms); DO SQLite statements and rows
// written; storage writes (setAlarm, kv); queue messages and operations; Worker invocations.
// It imports nothing from the tree, so it also fits releases older than itself.

export type Counters = {
  d1Statements: number;
  d1RoundTrips: number;
  d1RowsRead: number;
  d1RowsWritten: number;
  d1Ms: number;
  /** Statements whose result carries no meta (first(), raw()): their rows are not in the totals. */
  d1Unmetered: number;
  /** The same D1 figures by statement kind (verb, table, and what it sets first), for the breakdown. */
  d1ByStatement: Record<string, StatementCount>;
  doRequests: Record<string, number>;
  doAlarms: number;
  doSqlStatements: number;
  doSqlRowsWritten: number;
  doStorageWrites: number;
  queueMessages: Record<string, number>;
  queueOperations: number;
  invocations: Record<string, number>;
};

export type StatementCount = { statements: number; rowsWritten: number; rowsRead: number };

const fresh = (): Counters => ({
  d1Statements: 0,
  d1RoundTrips: 0,
  d1RowsRead: 0,
  d1RowsWritten: 0,
  d1Ms: 0,
  d1Unmetered: 0,
  d1ByStatement: {},
  doRequests: {},
  doAlarms: 0,
  doSqlStatements: 0,
  doSqlRowsWritten: 0,
  doStorageWrites: 0,
  queueMessages: {},
  queueOperations: 0,
  invocations: {},
});

// One set per isolate. `wrangler dev` runs the Worker and all its Durable Objects in one isolate,
// so this sees everything; the bench checks that by reading DO-side counts back.
let counters = fresh();
// DO SQLite cursors report rowsWritten as they are consumed: read them when the counters are taken.
let openCursors: { rowsWritten: number }[] = [];

const bump = (record: Record<string, number>, key: string, n = 1) => {
  record[key] = (record[key] ?? 0) + n;
};

export function takeCounters(reset: boolean): Counters {
  for (const c of openCursors) counters.doSqlRowsWritten += c.rowsWritten;
  openCursors = [];
  const snapshot = structuredClone(counters);
  if (reset) counters = fresh();
  return snapshot;
}

type Meta = { rows_read?: number; rows_written?: number; duration?: number } | undefined;

function addMeta(meta: Meta, label: string) {
  const by = counters.d1ByStatement[label] ?? { statements: 0, rowsWritten: 0, rowsRead: 0 };
  counters.d1ByStatement[label] = by;
  by.statements++;
  if (!meta) {
    counters.d1Unmetered++;
    return;
  }
  counters.d1RowsRead += meta.rows_read ?? 0;
  counters.d1RowsWritten += meta.rows_written ?? 0;
  counters.d1Ms += meta.duration ?? 0;
  by.rowsRead += meta.rows_read ?? 0;
  by.rowsWritten += meta.rows_written ?? 0;
}

/** A statement's kind, e.g. `UPDATE messages SET status → sent`, `INSERT outbox_events (message.status)`:
 *  the verb, the table, and for an UPDATE the first column it sets (with the value, for a status). */
export function statementLabel(query: string, params: unknown[]): string {
  const q = query.replace(/\s+/g, " ").trim();
  const verb = (/^\w+/.exec(q)?.[0] ?? "?").toUpperCase();
  const name = (re: RegExp) => re.exec(q)?.[1] ?? "?";
  if (verb === "UPDATE") {
    const table = name(/^UPDATE\s+[`"]?(\w+)/i);
    const column = name(/\bSET\s+[`"]?(\w+)/i);
    const value = column === "status" && /\bSET\s+[`"]?status[`"]?\s*=\s*\?/i.test(q) && typeof params[0] === "string" ? ` → ${params[0]}` : "";
    return `UPDATE ${table} SET ${column}${value}`;
  }
  if (verb === "INSERT" || verb === "REPLACE") {
    const table = name(/\bINTO\s+[`"]?(\w+)/i);
    const type = /'((?:message|instance|automation)\.[a-z_.]+)'/.exec(q)?.[1];
    return `INSERT ${table}${type ? ` (${type})` : ""}`;
  }
  if (verb === "DELETE") return `DELETE ${name(/\bFROM\s+[`"]?(\w+)/i)}`;
  if (verb === "SELECT" || verb === "WITH") return `SELECT ${name(/\bFROM\s+[`"]?(\w+)/i)}`;
  return verb;
}

const realStatement = new WeakMap<object, { stmt: D1PreparedStatement; label: string }>();

function meterStatement(stmt: D1PreparedStatement, query: string, params: unknown[] = []): D1PreparedStatement {
  const label = statementLabel(query, params);
  const proxy = new Proxy(stmt, {
    get(target, prop) {
      if (prop === "bind") return (...args: unknown[]) => meterStatement(target.bind(...args), query, args);
      if (prop === "run" || prop === "all") {
        return async (...args: unknown[]) => {
          counters.d1Statements++;
          counters.d1RoundTrips++;
          const result = await (target[prop] as (...a: unknown[]) => Promise<{ meta?: Meta }>).apply(target, args);
          addMeta(result?.meta, label);
          return result;
        };
      }
      if (prop === "first" || prop === "raw") {
        return async (...args: unknown[]) => {
          counters.d1Statements++;
          counters.d1RoundTrips++;
          addMeta(undefined, label);
          return (target[prop] as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  realStatement.set(proxy, { stmt, label });
  return proxy;
}

function meterD1(db: D1Database): D1Database {
  return new Proxy(db, {
    get(target, prop) {
      if (prop === "prepare") return (query: string) => meterStatement(target.prepare(query), query);
      if (prop === "batch") {
        return async (stmts: D1PreparedStatement[]) => {
          counters.d1Statements += stmts.length;
          counters.d1RoundTrips++;
          const known = stmts.map((s) => realStatement.get(s));
          const results = await target.batch(stmts.map((s, i) => known[i]?.stmt ?? s));
          results.forEach((r, i) => {
            addMeta(r.meta as Meta, known[i]?.label ?? "?");
          });
          return results;
        };
      }
      if (prop === "exec") {
        return async (query: string) => {
          counters.d1RoundTrips++;
          const result = await target.exec(query);
          counters.d1Statements += result.count;
          counters.d1Ms += result.duration;
          return result;
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

// Each call on a stub is one Durable Object request (an RPC session).
function meterNamespace(name: string, ns: DurableObjectNamespace): DurableObjectNamespace {
  return new Proxy(ns, {
    get(target, prop) {
      if (prop === "get" || prop === "getByName") {
        return (...args: unknown[]) => {
          const stub = (target[prop] as (...a: unknown[]) => object).apply(target, args);
          return new Proxy(stub, {
            get(s, method) {
              const value = Reflect.get(s, method, s);
              if (typeof value !== "function" || method === "then") return value;
              return (...callArgs: unknown[]) => {
                bump(counters.doRequests, name);
                // Reflect.apply: on an RPC method, `.apply` would itself be taken for a remote method.
                return Reflect.apply(value, s, callArgs);
              };
            },
          });
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

// Queue pricing counts one operation per 64 KB written, read and deleted: 3 per delivered message.
function meterQueue(name: string, queue: Queue): Queue {
  const ops = (body: unknown) => 3 * Math.max(1, Math.ceil(new TextEncoder().encode(JSON.stringify(body) ?? "").length / 65_536));
  return new Proxy(queue, {
    get(target, prop) {
      if (prop === "send") {
        return (body: unknown, options?: QueueSendOptions) => {
          bump(counters.queueMessages, name);
          counters.queueOperations += ops(body);
          return target.send(body, options);
        };
      }
      if (prop === "sendBatch") {
        return (messages: Iterable<MessageSendRequest>, options?: QueueSendBatchOptions) => {
          const list = [...messages];
          bump(counters.queueMessages, name, list.length);
          for (const m of list) counters.queueOperations += ops(m.body);
          return target.sendBatch(list, options);
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

const isD1 = (v: unknown): v is D1Database => typeof v === "object" && v !== null && "prepare" in v && "batch" in v && "exec" in v;
const isNamespace = (v: unknown): v is DurableObjectNamespace => typeof v === "object" && v !== null && "idFromName" in v && "get" in v;
const isQueue = (v: unknown): v is Queue => typeof v === "object" && v !== null && "send" in v && "sendBatch" in v;

const metered = new WeakMap<object, object>();

export function meterEnv<E extends object>(env: E): E {
  const hit = metered.get(env);
  if (hit) return hit as E;
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(env)) {
    out[name] = isD1(value) ? meterD1(value) : isNamespace(value) ? meterNamespace(name, value) : isQueue(value) ? meterQueue(name, value) : value;
  }
  metered.set(env, out);
  return out as E;
}

function meterSql(sql: SqlStorage): SqlStorage {
  return new Proxy(sql, {
    get(target, prop) {
      if (prop === "exec") {
        return (query: string, ...bindings: unknown[]) => {
          counters.doSqlStatements++;
          const cursor = target.exec(query, ...bindings);
          openCursors.push(cursor);
          return cursor;
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

function meterStorage(storage: DurableObjectStorage): DurableObjectStorage {
  const sql = meterSql(storage.sql);
  return new Proxy(storage, {
    get(target, prop) {
      if (prop === "sql") return sql;
      if (prop === "kv") {
        const kv = target.kv;
        return new Proxy(kv, {
          get(k, p) {
            const value = Reflect.get(k, p, k);
            if (typeof value !== "function") return value;
            return (...args: unknown[]) => {
              if (p === "put" || p === "delete") counters.doStorageWrites++;
              return value.apply(k, args);
            };
          },
        });
      }
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        // setAlarm is billed as a row written; put/delete/deleteAlarm are storage writes too.
        if (prop === "setAlarm" || prop === "put" || prop === "delete" || prop === "deleteAlarm" || prop === "deleteAll") counters.doStorageWrites++;
        return value.apply(target, args);
      };
    },
  });
}

function meterState(ctx: DurableObjectState): DurableObjectState {
  const storage = meterStorage(ctx.storage);
  return new Proxy(ctx, {
    get(target, prop) {
      if (prop === "storage") return storage;
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

type DoClass = new (ctx: DurableObjectState, env: never) => object;

/** A subclass of a Durable Object class whose state and env are metered, and whose alarms are counted. */
export function meterDurableObject<C extends DoClass>(Base: C): C {
  // @ts-expect-error: a mixin over an arbitrary constructor
  return class extends Base {
    constructor(ctx: DurableObjectState, env: object) {
      // The runtime checks the state's type in the base constructor: pass the real one, then shadow
      // `this.ctx` with the metered view that the object's methods use from here on.
      super(ctx, meterEnv(env) as never);
      Object.defineProperty(this, "ctx", { value: meterState(ctx), writable: false, configurable: true });
    }
    async alarm(...args: unknown[]) {
      counters.doAlarms++;
      const base = Base.prototype as { alarm?: (...a: unknown[]) => unknown };
      return base.alarm?.apply(this, args);
    }
  };
}

async function progress(env: { DB: D1Database }): Promise<Response> {
  const statuses = await env.DB.prepare("SELECT status, COUNT(*) AS n FROM messages GROUP BY status").all<{ status: string; n: number }>();
  const inbound = await env.DB.prepare("SELECT COUNT(*) AS n FROM inbound_messages").first<{ n: number }>();
  return Response.json({ messages: Object.fromEntries(statuses.results.map((r) => [r.status, r.n])), inbound: inbound?.n ?? 0 });
}

type Handler = {
  fetch?: (req: Request, env: object, ctx: ExecutionContext) => unknown;
  queue?: (batch: MessageBatch, env: object, ctx: ExecutionContext) => unknown;
  scheduled?: (c: ScheduledController, env: object, ctx: ExecutionContext) => unknown;
};

/** The Worker's handler with a metered env and an extra route that reads (and resets) the counters. */
export function meterWorker(worker: Handler): Handler {
  return {
    fetch(req, env, ctx) {
      const url = new URL(req.url);
      if (url.pathname === "/__meter") return Response.json(takeCounters(url.searchParams.get("reset") === "1"));
      // Progress probes read the raw binding, so waiting for the system to settle costs nothing metered.
      if (url.pathname === "/__meter/progress") return progress(env as { DB: D1Database });
      bump(counters.invocations, "fetch");
      return worker.fetch?.(req, meterEnv(env), ctx);
    },
    queue(batch, env, ctx) {
      bump(counters.invocations, `queue:${batch.queue}`);
      // Reading and acking a batch's messages: each delivered message costs its read and delete too,
      // already counted at send as 3 operations; a retry adds one read.
      for (const m of batch.messages) if (m.attempts > 1) counters.queueOperations++;
      return worker.queue?.(batch, meterEnv(env), ctx);
    },
    scheduled(c, env, ctx) {
      bump(counters.invocations, "scheduled");
      return worker.scheduled?.(c, meterEnv(env), ctx);
    },
  };
}
