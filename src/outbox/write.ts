// Every outbox row is built here, from its contract in src/contracts/events.ts: the event's type
// picks the schema, its keys are the contract's, and each value the Worker holds is parsed against
// the contract before the insert. A value the statement takes from rows (an SQL expression: the
// message's status as the transition left it, a counter as the UPDATE leaves it) stays in SQL, so
// the event and the state change it records stay in one statement or one batch, guarded alike.
import { is, SQL } from "drizzle-orm";
import type { z } from "zod";
import { type GatewayEvent, gatewayEvent } from "../contracts/events.ts";
import { type EventField, insertEvent } from "../db/queries/outbox-events.ts";

export type EventType = GatewayEvent["type"];
export type EventData<T extends EventType> = Extract<GatewayEvent, { type: T }>["data"];

/** The data of an event: each field a value or an SQL expression over the source rows. An optional
 *  field may be null (JSON null, which readers take as absent: see routes/events.ts). */
export type EventFields<T extends EventType> = {
  [K in keyof EventData<T>]: EventData<T>[K] | SQL | (undefined extends EventData<T>[K] ? null : never);
};

const dataSchemas = new Map<string, z.ZodObject>(gatewayEvent.options.map((o) => [o.shape.type.value, o.shape.data]));

function checked(type: EventType, fields: Record<string, unknown>): EventField[] {
  const schema = dataSchemas.get(type);
  if (!schema) throw new Error(`no contract for event ${type}`);
  const shape = schema.shape;
  for (const key of Object.keys(shape)) {
    if (!(key in fields) && !shape[key]?.safeParse(undefined).success) throw new Error(`${type}.${key} is required`);
  }
  return Object.entries(fields).map(([key, value]): EventField => {
    const field = shape[key];
    if (!field) throw new Error(`${type} has no field ${key}`);
    if (is(value, SQL)) return [key, value];
    if (value === null || value === undefined) {
      if (!field.safeParse(undefined).success) throw new Error(`${type}.${key} is required`);
      return [key, null];
    }
    return [key, field.parse(value)];
  });
}

/** The INSERT of one event, built from its contract; un-awaited, for the batch of the state change
 *  it records. `source` is the statement's tail (`FROM … WHERE …`, or `WHERE …` for a guard such as
 *  `changes() > 0`) that the SQL fields read and that decides whether the event is written. */
export function writeEvent<T extends EventType>(
  type: T,
  e: { tenantId: string | SQL; occurredAt: number; data: EventFields<T>; callbackUrl?: SQL; source?: SQL },
): SQL {
  return insertEvent({ ...e, type, data: checked(type, e.data as Record<string, unknown>) });
}
