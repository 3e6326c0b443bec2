// A contact handed to a person. D1 is the record (conversation_handoffs: the human phases under
// way; handoff_changes: every change, for the timeline). Each change writes its row, its timeline
// entry and its conversation.handoff event in one D1 batch, so an event is never lost or invented.
// While a contact is human its inbound messages are recorded as `human` instead of `pending`
// (offer.ts, wake.ts) and its automation lane holds back what already waited (lane.ts): stored and
// shown, never offered; the next call after the hand-back carries them in its conversation.
import type { SQL } from "drizzle-orm";
import type { Statement } from "../db/batch.ts";
import type { Db } from "../db/client.ts";
import { conversationHandoffs } from "../db/queries/index.ts";
import { newId } from "../ids.ts";
import { writeEvent } from "../outbox/write.ts";

export type HandoffBy = "operator" | "handler" | "timeout";

export type Conversation = conversationHandoffs.Change;

export type HandoffRow = conversationHandoffs.HandoffRow;

/** Human now: a hand-off row whose until (if any) has not passed. The alarm that hands back at
 *  until only writes the record and the event; the hand-back itself takes effect at until. */
export function humanSql(instanceId: SQL | string, contact: SQL | string, now: number): SQL {
  return conversationHandoffs.isHuman(instanceId, contact, now);
}

export function handoffStatement(instanceId: string, contact: string): SQL {
  return conversationHandoffs.rowStatement(instanceId, contact);
}

export async function handoffOf(db: Db, instanceId: string, contact: string, now = Date.now()): Promise<HandoffRow | undefined> {
  const row = await conversationHandoffs.rowOf(db, instanceId, contact);
  return row && (row.until === null || row.until > now) ? row : undefined;
}

const handoffEvent = (
  c: Conversation,
  now: number,
  data: { state: "human" | "bot"; reason: string | null; by: HandoffBy; until: number | null },
  source: SQL,
) =>
  writeEvent("conversation.handoff", {
    tenantId: c.tenantId,
    occurredAt: now,
    data: {
      instance: c.instanceName,
      contact: c.contact,
      channel: conversationHandoffs.channelOf(c.instanceId),
      state: data.state,
      reason: data.reason,
      by: data.by,
      until: data.until === null ? null : new Date(data.until).toISOString(),
    },
    source,
  });

/** To a person: the row (since kept when already human), the timeline entry and the event.
 *  changeId names the change: a second run of the same statements (a lane's retry) writes nothing. */
export function takeOverStatements(
  c: Conversation,
  input: { reason: string | null; until: number | null; by: HandoffBy; now: number; changeId?: string },
): Statement[] {
  const { reason, until, by, now } = input;
  const changeId = input.changeId ?? newId("ho");
  return [
    handoffEvent(c, now, { state: "human", reason, by, until }, conversationHandoffs.newChangeSource(changeId)),
    ...conversationHandoffs.takeOver(c, { changeId, reason, until, by, now }),
  ];
}

/** Back to the handler: the timeline entry, the event and the row's removal, all only when the
 *  contact is handed off (and, for a timeout, only for the phase whose until it is). The first
 *  statement's changes say whether anything changed. */
export function handBackStatements(c: Conversation, input: { by: HandoffBy; now: number; until?: number }): Statement[] {
  const { by, now } = input;
  return [
    handoffEvent(c, now, { state: "bot", reason: null, by, until: null }, conversationHandoffs.handBackSource(c, now, input.until)),
    ...conversationHandoffs.handBack(c, { changeId: newId("ho"), by, now, until: input.until }),
  ];
}
