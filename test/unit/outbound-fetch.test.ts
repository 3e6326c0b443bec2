// What the Worker fetches on a tenant's behalf: automation replies pass the same private-address
// check as an API send, and no redirect is followed (it would carry the Evolution `apikey` or a
// signed call to wherever it points).
import { afterEach, describe, expect, it, vi } from "vitest";
import { callHandler } from "../../src/automation/handler.ts";
import type { AutomationConfig } from "../../src/automation/config.ts";
import { connectInstance, sendThroughEvolution } from "../../src/evolution/client.ts";

type Seen = { url: string; headers: Headers; redirect: string | undefined };

/** fetch as the runtime does it: with redirect "follow" (the default) it goes on to Location with
 *  the same headers; with "manual" it hands the 3xx back. */
function serve(routes: Record<string, () => Response>): Seen[] {
  const seen: Seen[] = [];
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    let url = input instanceof Request ? input.url : String(input);
    for (let hops = 0; hops < 5; hops++) {
      seen.push({ url, headers: new Headers(init?.headers), redirect: init?.redirect });
      const route = routes[url];
      if (!route) return new Response("not found", { status: 404 });
      const res = route();
      const location = res.headers.get("location");
      if (res.status < 300 || res.status > 399 || !location || init?.redirect === "manual") return res;
      url = new URL(location, url).toString();
    }
    throw new TypeError("too many redirects");
  });
  return seen;
}

afterEach(() => {
  vi.restoreAllMocks();
});

const automation: AutomationConfig = {
  instanceId: "ins_1",
  tenantId: "ten_1",
  url: "https://handler.example.com/hook",
  secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  previousSecret: null,
  previousSecretUntil: null,
  enabled: true,
  timeoutMs: 5_000,
  contextMessages: 0,
  debounceMs: 0,
  includeGroups: false,
  maxAttempts: 3,
  state: "active",
  failures: 0,
  pausedAt: null,
  probeAt: null,
  probeStartedAt: null,
};
const payload = {
  type: "automation.inbound" as const,
  instance: "loja",
  channel: "whatsapp" as const,
  contact: "5511970000001",
  replyTo: "5511970000001",
  messages: [{ id: "IN1", text: "oi", media: null, pushName: null, at: new Date().toISOString() }],
  conversation: [],
};
const production = { ALLOW_PRIVATE_URLS: "" };
const replyWith = (body: unknown) => () => Response.json(body);

describe("automation replies", () => {
  it.each([
    ["http://127.0.0.1/a.png", "loopback"],
    ["http://[::7f00:1]/a.png", "ipv4Compatible"],
    ["http://169.254.169.254/latest/meta-data", "linkLocal"],
    ["http://10.0.0.5/a.png", "private"],
  ])("a reply whose media URL is %s is refused like an API send (%s)", async (url, range) => {
    serve({ [automation.url]: replyWith({ replies: [{ text: "ok" }, { media: { url, type: "image" } }] }) });
    const outcome = await callHandler(automation, "msg_1", payload, "IN1", production);
    expect(outcome).toMatchObject({ ok: false });
    expect(outcome.ok === false && outcome.error).toBe(
      `reply 1 is not a valid message: media.url: Must be a public address; this one is ${range} (ALLOW_PRIVATE_URLS=true allows it for local development).`,
    );
  });

  it("a public media URL goes through, and ALLOW_PRIVATE_URLS lifts the check as it does for the API", async () => {
    serve({ [automation.url]: replyWith({ replies: [{ media: { url: "https://cdn.example.com/a.png", type: "image" } }] }) });
    const ok = await callHandler(automation, "msg_1", payload, "IN1", production);
    expect(ok.ok && ok.replies.map((r) => r.media?.url)).toEqual(["https://cdn.example.com/a.png"]);
    vi.restoreAllMocks();
    serve({ [automation.url]: replyWith({ replies: [{ media: { url: "http://127.0.0.1/a.png", type: "image" } }] }) });
    const local = await callHandler(automation, "msg_1", payload, "IN1", { ALLOW_PRIVATE_URLS: "true" });
    expect(local.ok).toBe(true);
  });

  it("a handler that redirects is a failed call; the signed call does not reach the redirect's target", async () => {
    const seen = serve({
      [automation.url]: () => new Response(null, { status: 307, headers: { location: "https://elsewhere.example.net/steal" } }),
      "https://elsewhere.example.net/steal": replyWith({ replies: [{ text: "from elsewhere" }] }),
    });
    const outcome = await callHandler(automation, "msg_1", payload, "IN1", production);
    expect(outcome.ok).toBe(false);
    expect(outcome.ok === false && outcome.error).toMatch(/^HTTP 307: redirects are not followed/);
    expect(seen.map((s) => s.url)).toEqual([automation.url]);
  });
});

describe("Evolution calls", () => {
  const instance = { name: "loja", url: "https://evolution.example.com", apiKey: "evo-secret-key" };
  const thief = "https://thief.example.net/collect";

  it("a send answered by a redirect is not sent, and the apikey never reaches the redirect's target", async () => {
    const seen = serve({
      "https://evolution.example.com/message/sendText/loja": () => new Response(null, { status: 302, headers: { location: thief } }),
      [thief]: replyWith({ key: { id: "BAE5STOLEN", remoteJid: "5511970000001@s.whatsapp.net" } }),
    });
    const outcome = await sendThroughEvolution(instance, { to: "5511970000001", text: "oi" }, 5_000);
    expect(outcome.kind).not.toBe("sent");
    expect(seen.map((s) => s.url)).toEqual(["https://evolution.example.com/message/sendText/loja"]);
    expect(seen.every((s) => s.headers.get("apikey") !== null && !s.url.startsWith(thief))).toBe(true);
  });

  it("a connect answered by a redirect is refused as configuration, without following it", async () => {
    const seen = serve({
      "https://evolution.example.com/instance/connect/loja": () => new Response(null, { status: 301, headers: { location: thief } }),
      [thief]: replyWith({ base64: "data:image/png;base64,AAAA", count: 1 }),
    });
    const outcome = await connectInstance(instance, 5_000);
    expect(outcome).toEqual({ kind: "refused", error: expect.stringMatching(/^Evolution 301: a redirect \(not followed\)/) });
    expect(seen.map((s) => s.url)).toEqual(["https://evolution.example.com/instance/connect/loja"]);
  });
});
