// A stand-in for a tenant's automation handler (an n8n flow, an AI agent): `npm start` runs it as a
// demo echo bot; tests and the benchmark script its behaviour per path.
//
// POST /bot/<name>  the handler. Verifies the Standard Webhooks signature when it knows the path's
//                   secret, records the call (start and end times, body), and answers
//                   {"replies":[{"text":"echo: …"}]} unless told otherwise.
// PUT  /_bot/<name> settings of that path: {secret?, fail?, failStatus?, delayMs?, reply?: "echo"|"none", hold?, handoff?}
// GET  /_bot/<name> the calls recorded for that path, and how many are being held.
import type { AddressInfo } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import { Hono } from "hono";
import { Webhook } from "standardwebhooks";
import { z } from "zod";

const settingsInput = z.strictObject({
  secret: z.string().startsWith("whsec_").optional(),
  /** The next N calls answer failStatus (500). */
  fail: z.int().min(0).optional(),
  failStatus: z.int().min(400).max(599).optional(),
  /** Each call takes this long before it answers. */
  delayMs: z.int().min(0).max(60_000).optional(),
  reply: z.enum(["echo", "none"]).optional(),
  /** Calls wait (unanswered) until a later PUT sets hold back to false. */
  hold: z.boolean().optional(),
  /** The next answer also asks for a person: `"handoff": <this>` beside its replies (once). */
  handoff: z.union([z.literal(true), z.record(z.string(), z.unknown())]).optional(),
});
type Settings = z.infer<typeof settingsInput>;

const inbound = z.object({
  type: z.literal("automation.inbound"),
  instance: z.string(),
  contact: z.string(),
  replyTo: z.string().nullable(),
  messages: z.array(z.object({ id: z.string(), text: z.string().nullable() }).loose()),
  conversation: z.array(z.object({ direction: z.string(), id: z.string(), text: z.string().nullable() }).loose()),
});

export type BotCall = {
  path: string;
  webhookId: string;
  contact: string;
  ids: string[];
  texts: (string | null)[];
  conversation: { direction: string; id: string; text: string | null }[];
  replyTo: string | null;
  start: number;
  end: number;
  status: number;
  verified: boolean;
  /** The body and Standard Webhooks headers as received, for tests that verify signatures themselves. */
  raw: string;
  signed: { "webhook-id": string; "webhook-timestamp": string; "webhook-signature": string };
};

export type EchoBot = { url: string; calls: BotCall[]; close(): Promise<void> };

export async function startEchoBot(opts: { port?: number; secret?: string; log?: (line: string) => void } = {}): Promise<EchoBot> {
  const settings = new Map<string, Settings & { failLeft: number }>();
  const calls: BotCall[] = [];
  const held = new Map<string, (() => void)[]>();
  const app = new Hono();
  const settingsOf = (path: string) => settings.get(path) ?? { failLeft: 0, ...(opts.secret ? { secret: opts.secret } : {}) };

  app.put("/_bot/:name", async (c) => {
    const parsed = settingsInput.safeParse(await c.req.json().catch(() => null));
    if (!parsed.success) return c.json({ error: "invalid settings", issues: parsed.error.issues }, 400);
    const path = c.req.param("name");
    const current = settingsOf(path);
    settings.set(path, { ...current, ...parsed.data, failLeft: parsed.data.fail ?? current.failLeft });
    if (parsed.data.hold === false) for (const release of held.get(path)?.splice(0) ?? []) release();
    return c.json({ ok: true });
  });

  app.get("/_bot/:name", (c) => c.json({ calls: calls.filter((x) => x.path === c.req.param("name")), held: held.get(c.req.param("name"))?.length ?? 0 }));

  app.post("/bot/:name", async (c) => {
    const start = Date.now();
    const path = c.req.param("name");
    const s = settingsOf(path);
    const raw = await c.req.text();
    let verified = false;
    if (s.secret) {
      try {
        new Webhook(s.secret).verify(raw, Object.fromEntries(c.req.raw.headers));
        verified = true;
      } catch {
        return c.json({ error: "bad signature" }, 401);
      }
    }
    const body = inbound.safeParse(JSON.parse(raw));
    if (!body.success) return c.json({ error: "not an automation.inbound body" }, 400);
    if (s.delayMs) await new Promise((r) => setTimeout(r, s.delayMs));
    if (s.hold) {
      await new Promise<void>((release) => {
        const list = held.get(path) ?? [];
        list.push(release);
        held.set(path, list);
      });
    }
    let status = 200;
    if (s.failLeft > 0) {
      s.failLeft--;
      status = s.failStatus ?? 500;
    }
    const texts = body.data.messages.map((m) => m.text);
    calls.push({
      path,
      webhookId: c.req.header("webhook-id") ?? "",
      contact: body.data.contact,
      ids: body.data.messages.map((m) => m.id),
      texts,
      conversation: body.data.conversation.map((m) => ({ direction: m.direction, id: m.id, text: m.text })),
      replyTo: body.data.replyTo,
      start,
      end: Date.now(),
      status,
      verified,
      raw,
      signed: {
        "webhook-id": c.req.header("webhook-id") ?? "",
        "webhook-timestamp": c.req.header("webhook-timestamp") ?? "",
        "webhook-signature": c.req.header("webhook-signature") ?? "",
      },
    });
    opts.log?.(`echo bot: ${body.data.contact} said ${JSON.stringify(texts.join(" / "))}${status !== 200 ? ` -> ${status}` : ""}`);
    if (status !== 200) return c.json({ error: "scripted failure" }, status === 503 ? 503 : 500);
    const handoff = s.handoff;
    s.handoff = undefined;
    if (s.reply === "none") return handoff ? c.json({ replies: [], handoff }) : c.body(null, 204);
    return c.json({ replies: [{ text: `echo: ${texts.filter(Boolean).join(" / ")}` }], ...(handoff ? { handoff } : {}) });
  });

  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: opts.port ?? 0, hostname: "127.0.0.1" }, () => resolve(s));
    s.once("error", reject);
  });
  // workerd keeps idle connections to reuse them; Node closing them after its default 5 s races
  // with that reuse, and the call fails as "Network connection lost". The client closes them instead.
  if ("keepAliveTimeout" in server) server.keepAliveTimeout = 0;
  const address = server.address();
  const port = typeof address === "object" && address ? (address satisfies AddressInfo).port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        if ("closeAllConnections" in server) server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
