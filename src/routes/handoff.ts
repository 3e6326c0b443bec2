// /v1/instances/:name/contacts/:contact/handoff — hand a contact to a person (its inbound messages
// are stored but not offered to the automation handler) and back. See src/automation/handoff.ts.
import { type Context, Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { automationLane, automationLaneKey } from "../automation/config.ts";
import { type Conversation, handBackStatements, type HandoffRow, handoffOf, takeOverStatements } from "../automation/handoff.ts";
import { dispatchInBackground } from "../callbacks/dispatch.ts";
import { handoffInput, handoffState } from "../contracts/automation.ts";
import { changes, runBatch } from "../db/batch.ts";
import { instances } from "../db/queries/index.ts";
import { ApiError } from "../errors.ts";
import { parseWith } from "../http/body.ts";
import { contactKey } from "../messages/contact-key.ts";
import { errorField, log } from "../observability/log.ts";
import { documented } from "../openapi/describe.ts";
import { visitorIdFormat } from "../providers/web/limits.ts";
import { iso } from "../time.ts";

const tags = ["Automation"];
// A contact as it appears on inbound messages: on WhatsApp phone digits, a group JID or a @lid JID;
// on Telegram a chat id; on the web chat a visitor id. The instance's channel says which applies.
const contactFormats: Record<string, { pattern: RegExp; message: string }> = {
  whatsapp: {
    pattern: /^(?:[1-9]\d{7,14}|\d{5,}(-\d+)?@g\.us|\d{5,}@lid)$/,
    message: "Must be the contact's phone digits (country code first, no +), a group JID (…@g.us) or a @lid JID.",
  },
  telegram: { pattern: /^-?[1-9]\d{0,15}$/, message: "Must be the Telegram chat id (424242001, -1001234567890)." },
  web: { pattern: visitorIdFormat, message: "Must be the visitor id (letters, digits, '.', '_' and '-')." },
};
export const contactParam = z
  .string()
  .max(128)
  .regex(
    new RegExp(
      Object.values(contactFormats)
        .map((f) => `(?:${f.pattern.source})`)
        .join("|"),
    ),
    {
      message: "Must be a contact's address: phone digits, a group or @lid JID, a Telegram chat id, or a web chat visitor id.",
    },
  )
  .describe("The contact, as on its inbound messages: phone digits, a group or @lid JID (WhatsApp), a chat id (Telegram), a visitor id (web).");
const params = z.object({ name: z.string().describe("The instance's name."), contact: contactParam });

/** The contact in the route, checked against the form its instance's channel uses, as its conversation key. */
export function contactOf(raw: string | undefined, channel: string): string {
  const format = contactFormats[channel] ?? contactFormats.whatsapp!;
  const contact = parseWith(z.string().max(128).regex(format.pattern, format.message), raw, "contact");
  return channel === "whatsapp" ? contactKey(contact) : contact;
}

async function conversationOf(c: Context<AppEnv>): Promise<Conversation> {
  const name = c.req.param("name") ?? "";
  const row = await instances.ownedByName(c.var.db, c.var.tenant.id, name);
  if (!row) throw new ApiError("not_found", `No instance ${name}.`);
  return { tenantId: c.var.tenant.id, instanceId: row.id, instanceName: row.name, contact: contactOf(c.req.param("contact"), row.channel) };
}

const stateOf = (row: HandoffRow | undefined): z.input<typeof handoffState> =>
  row
    ? {
        state: "human",
        since: iso(row.since),
        reason: row.reason,
        by: row.by === "handler" ? "handler" : "operator",
        ...(row.until !== null ? { until: iso(row.until) } : {}),
      }
    : { state: "bot" };

export const handoffRoutes = new Hono<AppEnv>()
  .post(
    "/:name/contacts/:contact/handoff",
    documented({
      summary: "Hand a contact to a person",
      description:
        "From now on the contact's inbound messages are stored and shown but not offered to the automation handler; a call already " +
        "under way finishes and its replies are sent. With ttlMinutes it hands back by itself. Emits conversation.handoff. " +
        "The body may be left out.",
      tags,
      caller: "apiKey",
      params,
      body: handoffInput,
      bodyOptional: true,
      responses: { 200: { description: "The contact is with a person.", schema: handoffState } },
      errors: ["not_found"],
    }),
    async (c) => {
      const conversation = await conversationOf(c);
      const input = c.req.valid("json");
      const now = Date.now();
      const until = input.ttlMinutes ? now + input.ttlMinutes * 60_000 : null;
      await runBatch(c.var.db, takeOverStatements(conversation, { reason: input.reason ?? null, until, by: "operator", now }));
      dispatchInBackground(c.env, c.executionCtx);
      if (until !== null) {
        // The contact's automation lane hands back at until. Without it the hand-back still takes
        // effect then (every offer checks until); only its record and event would wait.
        await automationLane(c.env, automationLaneKey(conversation.tenantId, conversation.instanceId, conversation.contact))
          .armHandoff(conversation, until)
          .catch((err) => log("warn", "could not arm the hand-off's timer", { contact: conversation.contact, error: errorField(err) }));
      }
      return c.json(stateOf(await handoffOf(c.var.db, conversation.instanceId, conversation.contact)), 200);
    },
  )
  .get(
    "/:name/contacts/:contact/handoff",
    documented({
      summary: "Whether a contact is with the automation handler or a person",
      tags,
      caller: "apiKey",
      params,
      responses: { 200: { description: "bot, or human with since, reason and until.", schema: handoffState } },
      errors: ["not_found"],
    }),
    async (c) => {
      const conversation = await conversationOf(c);
      return c.json(stateOf(await handoffOf(c.var.db, conversation.instanceId, conversation.contact)));
    },
  )
  .delete(
    "/:name/contacts/:contact/handoff",
    documented({
      summary: "Hand a contact back to the automation handler",
      description:
        "The handler gets the contact's next inbound message, with the messages of the human phase in its conversation (as context, " +
        "never offered as new). Emits conversation.handoff when the contact was with a person.",
      tags,
      caller: "apiKey",
      params,
      responses: { 200: { description: "The contact is with the handler.", schema: handoffState } },
      errors: ["not_found"],
    }),
    async (c) => {
      const conversation = await conversationOf(c);
      const [event] = await runBatch(c.var.db, handBackStatements(conversation, { by: "operator", now: Date.now() }));
      if (changes(event) > 0) dispatchInBackground(c.env, c.executionCtx);
      return c.json({ state: "bot" } satisfies z.input<typeof handoffState>, 200);
    },
  );
