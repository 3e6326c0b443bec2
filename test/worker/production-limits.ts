// Cloudflare's production limits, enforced in the Worker tests. Local D1, DO SQLite and Queues
// accept far more than production does (100 bound parameters, 100 KB statements, 128 KB queue
// messages), so code that passes here could fail deployed.
//
// How it reaches the Worker's own calls: @cloudflare/vitest-plugin runs the tests, the Worker's
// handlers and its Durable Objects in one workerd isolate, and every `env.DB` (the tests', the
// routes', the lanes') is the same binding object, of the binding classes D1Database,
// D1PreparedStatement, WorkerQueue and SqlStorage. Wrapping those classes' methods once, here,
// wraps every call the Worker makes in the tests, and nothing of it ships in the Worker.
//
// It also offers a fault switch for D1 batches (failNextBatch), to test what the lane does when
// a write fails after Evolution answered.
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";

export const LIMITS = {
  d1Params: 100,
  d1StatementBytes: 100_000,
  doSqlParams: 100,
  doSqlStatementBytes: 100_000,
  queueMessageBytes: 128_000,
  queueBatchBytes: 256_000,
  queueBatchMessages: 100,
  likePatternBytes: 50,
} as const;

export type BoundStatement = { sql: string; params: unknown[] };
type BatchFault = { match: (statements: BoundStatement[]) => boolean; error: string; remaining: number };
type Registry = { installed: boolean; sqlOf: WeakMap<object, BoundStatement>; batchFaults: BatchFault[]; violations: string[] };

// Shared through globalThis: each test file may load its own copy of this module.
const KEY = Symbol.for("mensageiro.production-limits");
const globals = globalThis as typeof globalThis & { [KEY]?: Registry };
globals[KEY] ??= { installed: false, sqlOf: new WeakMap(), batchFaults: [], violations: [] };
const registry: Registry = globals[KEY];

const bytes = (text: string) => new TextEncoder().encode(text).byteLength;

/** The LIKE and GLOB patterns of a statement: literals written in the SQL, and the values bound to
 *  `LIKE ?` placeholders (found by counting the placeholders outside string literals). */
export function likePatterns(query: string, params: unknown[]): string[] {
  const patterns: string[] = [];
  let placeholder = 0;
  let i = 0;
  while (i < query.length) {
    const ch = query[i]!;
    if (ch === "'") {
      const end = literalEnd(query, i);
      i = end;
      continue;
    }
    if (ch === "?") {
      placeholder++;
      i++;
      continue;
    }
    const keyword = /^(LIKE|GLOB)\s+/i.exec(query.slice(i, i + 12));
    if (keyword && (i === 0 || /[\s(]/.test(query[i - 1]!))) {
      let j = i + keyword[0].length;
      if (query[j] === "?") {
        const value = params[placeholder];
        if (typeof value === "string") patterns.push(value);
      } else if (query[j] === "'") {
        const end = literalEnd(query, j);
        patterns.push(query.slice(j + 1, end - 1).replace(/''/g, "'"));
        j = end;
      }
      i = j;
      continue;
    }
    i++;
  }
  return patterns;
}

/** The index just past the string literal opening at `start`. */
function literalEnd(query: string, start: number): number {
  let i = start + 1;
  while (i < query.length) {
    if (query[i] === "'" && query[i + 1] === "'") i += 2;
    else if (query[i] === "'") return i + 1;
    else i++;
  }
  return i;
}

function checkLikePatterns(query: string, params: unknown[]): void {
  for (const pattern of likePatterns(query, params)) {
    if (bytes(pattern) > LIMITS.likePatternBytes)
      refuse(`D1_ERROR: LIKE or GLOB pattern too complex (${bytes(pattern)} bytes; production D1 allows ${LIMITS.likePatternBytes}): SQLITE_ERROR`);
  }
}

function refusal(message: string): Error {
  registry.violations.push(message);
  return new Error(message);
}
function refuse(message: string): never {
  throw refusal(message);
}

/** Makes the next D1 batch whose statements match throw, as a failed write would. */
export function failNextBatch(match: (statements: BoundStatement[]) => boolean, error = "D1_ERROR: simulated failure of the write", times = 1) {
  registry.batchFaults.push({ match, error, remaining: times });
}

/** The limit violations seen since the last call (each was also thrown where it happened, but
 *  Worker code may have caught and logged it), and forgets them. */
export function takeViolations(): string[] {
  return registry.violations.splice(0);
}

type AnyFn = (this: unknown, ...args: unknown[]) => unknown;
function wrap(proto: object, name: string, around: (original: AnyFn) => AnyFn) {
  const original = Reflect.get(proto, name);
  if (typeof original !== "function") throw new Error(`production limits: ${name} is not a method`);
  Object.defineProperty(proto, name, { value: around(original as AnyFn), writable: true, configurable: true });
}

function queueBodyBytes(body: unknown, contentType: unknown): number {
  if (body instanceof ArrayBuffer) return body.byteLength;
  if (ArrayBuffer.isView(body)) return body.byteLength;
  if (typeof body === "string" && contentType === "text") return bytes(body);
  return bytes(JSON.stringify(body) ?? "");
}

export async function installProductionLimits(): Promise<void> {
  if (registry.installed) return;
  registry.installed = true;

  const d1 = Object.getPrototypeOf(env.DB);
  const statement = Object.getPrototypeOf(env.DB.prepare("SELECT 1"));
  wrap(
    d1,
    "prepare",
    (original) =>
      function (this: unknown, ...args: unknown[]) {
        const query = String(args[0]);
        if (bytes(query) > LIMITS.d1StatementBytes) refuse(`D1_ERROR: statement too long (${bytes(query)} bytes; production D1 allows 100 KB): SQLITE_TOOBIG`);
        // Literal patterns (LIKE 'x%'); bound ones are checked at bind.
        checkLikePatterns(query, []);
        const prepared = original.apply(this, args);
        if (prepared && typeof prepared === "object") registry.sqlOf.set(prepared, { sql: query, params: [] });
        return prepared;
      },
  );
  wrap(
    statement,
    "bind",
    (original) =>
      function (this: unknown, ...values: unknown[]) {
        if (values.length > LIMITS.d1Params)
          refuse(`D1_ERROR: too many SQL variables (${values.length} bound parameters; production D1 allows ${LIMITS.d1Params}): SQLITE_ERROR`);
        const prepared = this && typeof this === "object" ? registry.sqlOf.get(this) : undefined;
        if (prepared) checkLikePatterns(prepared.sql, values);
        const bound = original.apply(this, values);
        if (bound && typeof bound === "object" && prepared !== undefined) registry.sqlOf.set(bound, { sql: prepared.sql, params: values });
        return bound;
      },
  );
  wrap(
    d1,
    "batch",
    (original) =>
      function (this: unknown, ...args: unknown[]) {
        const list = Array.isArray(args[0]) ? args[0] : [];
        const statements = list.map((s) => (s && typeof s === "object" ? registry.sqlOf.get(s) : undefined) ?? { sql: "", params: [] });
        const fault = registry.batchFaults.find((f) => f.match(statements));
        if (fault) {
          fault.remaining -= 1;
          if (fault.remaining <= 0) registry.batchFaults.splice(registry.batchFaults.indexOf(fault), 1);
          return Promise.reject(new Error(fault.error));
        }
        return original.apply(this, args);
      },
  );

  const queue = Object.getPrototypeOf(env.SENDS);
  wrap(
    queue,
    "send",
    (original) =>
      function (this: unknown, ...args: unknown[]) {
        const options = args[1] && typeof args[1] === "object" ? args[1] : {};
        const size = queueBodyBytes(args[0], "contentType" in options ? options.contentType : undefined);
        if (size > LIMITS.queueMessageBytes)
          return Promise.reject(refusal(`Queue send failed: message of ${size} bytes exceeds the ${LIMITS.queueMessageBytes}-byte limit`));
        return original.apply(this, args);
      },
  );
  wrap(
    queue,
    "sendBatch",
    (original) =>
      function (this: unknown, ...args: unknown[]) {
        const messages = Array.isArray(args[0]) ? args[0] : [];
        if (messages.length > LIMITS.queueBatchMessages)
          return Promise.reject(refusal(`Queue sendBatch failed: ${messages.length} messages (at most ${LIMITS.queueBatchMessages})`));
        let total = 0;
        for (const m of messages) {
          const item = m && typeof m === "object" ? m : {};
          const size = queueBodyBytes("body" in item ? item.body : undefined, "contentType" in item ? item.contentType : undefined);
          if (size > LIMITS.queueMessageBytes)
            return Promise.reject(refusal(`Queue sendBatch failed: a message of ${size} bytes exceeds the ${LIMITS.queueMessageBytes}-byte limit`));
          total += size;
        }
        if (total > LIMITS.queueBatchBytes)
          return Promise.reject(refusal(`Queue sendBatch failed: ${total} bytes in one batch (at most ${LIMITS.queueBatchBytes})`));
        return original.apply(this, args);
      },
  );

  // SqlStorage is reached through an object: the probe lane is created for this and stays empty.
  await runInDurableObject(env.LANES.get(env.LANES.idFromName("production-limits-probe")), (_instance, state) => {
    wrap(
      Object.getPrototypeOf(state.storage.sql),
      "exec",
      (original) =>
        function (this: unknown, ...args: unknown[]) {
          const query = String(args[0]);
          if (bytes(query) > LIMITS.doSqlStatementBytes)
            refuse(`SQLITE_TOOBIG: statement too long (${bytes(query)} bytes; Durable Object SQLite allows 100 KB)`);
          if (args.length - 1 > LIMITS.doSqlParams)
            refuse(`too many SQL variables (${args.length - 1} bound parameters; Durable Object SQLite allows ${LIMITS.doSqlParams}): SQLITE_ERROR`);
          checkLikePatterns(query, args.slice(1));
          return original.apply(this, args);
        },
    );
  });
}
