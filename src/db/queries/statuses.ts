// Status lists of the tables and the SQL conditions built on them, written once.
import { type SQL, sql } from "drizzle-orm";
import { type MessageStatus, terminalStatuses } from "../../contracts/events.ts";

/** A message waiting or in flight: the gateway may still send it. */
export const activeMessageStatuses = ["scheduled", "queued", "processing"] as const satisfies readonly MessageStatus[];
export { terminalStatuses };

/** Callback deliveries still to attempt. */
export const openCallbackStatuses = ["pending", "retrying"] as const;

// Literals, not bound parameters: SQLite uses a partial index only when the query repeats the
// index's condition as written, and a parameter is not the same term.
const literalList = (values: readonly string[]) => `(${values.map((v) => `'${v}'`).join(", ")})`;
const column = (alias: string | undefined, name: string) => (alias ? `${alias}.${name}` : name);

/** `status IN ('scheduled', 'queued', 'processing')`: the condition of the partial indexes
 *  messages_lane_active and messages_active_ready, which a query repeats to use them. */
export const messageIsActive = (alias?: string): SQL => sql.raw(`${column(alias, "status")} IN ${literalList(activeMessageStatuses)}`);

/** `status IN ('sent', 'delivered', 'read', 'failed', 'canceled')`: nothing more will be sent. */
export const messageIsTerminal = (alias?: string): SQL => sql.raw(`${column(alias, "status")} IN ${literalList(terminalStatuses)}`);

/** `status IN ('pending', 'retrying')`: the condition of the partial index callback_deliveries_due. */
export const callbackIsOpen = (alias?: string): SQL => sql.raw(`${column(alias, "status")} IN ${literalList(openCallbackStatuses)}`);
