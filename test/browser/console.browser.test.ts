// The operator console in a real browser (Debian's chromium, headless, driven by playwright-core)
// against the local runtime: wrangler dev (local D1, Queues, Durable Objects) and the Evolution
// simulator sending its webhooks back. Screenshots of every page at phone and desktop widths go to
// a temporary folder, or to docs/console/ with CONSOLE_SCREENSHOTS=1 (so a test run does not
// rewrite tracked images).
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEchoBot, type EchoBot } from "../../simulator/echo-bot.ts";
import { startSimulator, type RunningSimulator } from "../../simulator/server.ts";
import { launchChromium, openPage, type PageWatch, screenshotFolder, shoot as shootPage, signIn } from "../support/browser.ts";
import { provisionTenant, startGateway, type Gateway } from "../../tools/harness/gateway.ts";

const shots = screenshotFolder("CONSOLE_SCREENSHOTS", "console");

let gateway: Gateway;
let simulator: RunningSimulator;
let bot: EchoBot;
let browser: Browser;
let page: Page;
let watch: PageWatch;
let tenant: Awaited<ReturnType<typeof provisionTenant>>;

async function gatewayApi(pathname: string, init: { method?: string; json?: unknown; key?: string } = {}) {
  const res = await fetch(`${gateway.url}${pathname}`, {
    method: init.method ?? (init.json ? "POST" : "GET"),
    headers: { authorization: `Bearer ${init.key ?? tenant.apiKey}`, ...(init.json ? { "content-type": "application/json" } : {}) },
    body: init.json ? JSON.stringify(init.json) : undefined,
  });
  return { status: res.status, body: (await res.json()) as any };
}

async function sim(pathname: string, json: unknown) {
  const res = await fetch(`${simulator.url}${pathname}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(json) });
  expect(res.ok, `${pathname}: ${res.status}`).toBe(true);
  return res.json() as Promise<any>;
}

/** The page as it is now, at both widths. */
const shoot = (name: string) => shootPage(page, shots, name);

beforeAll(async () => {
  [simulator, gateway, bot] = await Promise.all([
    startSimulator({ port: 0, qrRefreshMs: 1500, deliveredDelayMs: 300, readDelayMs: 700 }),
    startGateway(),
    startEchoBot(),
  ]);
  tenant = await provisionTenant(gateway.url, simulator.url, { webhooks: "single", instance: "loja-centro" });
  browser = await launchChromium();
  watch = await openPage(browser, gateway.url);
  page = watch.page;
});
afterAll(async () => {
  await browser?.close();
  await gateway?.stop();
  await simulator?.close();
  await bot?.close();
});

describe("the operator console", () => {
  it("refuses a wrong key with a clear message, then signs in", async () => {
    await page.goto(`${gateway.url}/console/`);
    await page.fill("#api-key", "mgo_not-a-real-key");
    await page.press("#api-key", "Enter");
    await expect.poll(() => page.textContent("#sign-in-error"), { timeout: 15_000 }).toContain("wrong or has been revoked");
    await shoot("sign-in-error");
    await page.fill("#api-key", tenant.apiKey);
    await page.click("text=Sign in");
    await page.waitForSelector("#counts [data-count=queued]");
    await page.waitForSelector("#live.on");
    expect(await page.evaluate("document.cookie")).toBe("");
  });

  it("shows a message sent through the API live, within a second, until it is read; then its history", async () => {
    await page.goto(`${gateway.url}/console/#/messages`);
    await page.waitForSelector("#messages tbody");
    await page.waitForSelector("#live.on");
    const started = Date.now();
    const sent = await gatewayApi("/v1/messages", { json: { instance: tenant.instance, to: "5511987650001", text: "Olá! Seu pedido saiu para entrega." } });
    expect(sent.status).toBe(202);
    const accepted = Date.now();
    const row = `#messages tr[data-id="${sent.body.id}"]`;
    await page.waitForSelector(row, { timeout: 5000 });
    const shown = Date.now();
    console.log(`message shown ${shown - accepted} ms after the API accepted it (${shown - started} ms after the POST began)`);
    expect(shown - accepted).toBeLessThan(1000);
    await page.waitForSelector(`${row} [data-status=read]`, { timeout: 15_000 });
    await shoot("messages");
    await page.click(`${row} a[href^="#/messages/"]`);
    await page.waitForSelector("#history");
    const history = await page.$$eval("#history tbody tr", (rows) =>
      rows.map((r) => [r.querySelector("[data-status]")?.textContent, r.lastElementChild?.textContent]),
    );
    // Evolution's send.message webhook adds a confirmation line to the sent step.
    expect(history.map(([status]) => status).filter((s, i, all) => s !== all[i - 1])).toEqual(["queued", "processing", "sent", "delivered", "read"]);
    expect(history).toContainEqual(["sent", "send.message confirmed by Evolution"]);
    await shoot("message");
  });

  it("replays a dead letter and shows the result", async () => {
    await fetch(`${simulator.url}/_sim/faults`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        instance: tenant.instance,
        number: "5511987650002",
        status: 400,
        body: { status: 400, error: "Bad Request", response: { message: ["Text too long"] } },
      }),
    });
    const failed = await gatewayApi("/v1/messages", { json: { instance: tenant.instance, to: "5511987650002", text: "Seu código é 4411" } });
    await expect.poll(async () => (await gatewayApi(`/v1/messages/${failed.body.id}`)).body.status, { timeout: 15_000 }).toBe("failed");
    await page.goto(`${gateway.url}/console/#/overview`);
    await page.waitForSelector("#alarm-dead");
    await shoot("overview");
    await page.click("#alarm-dead");
    await page.waitForSelector(`#dead-letters tr[data-id="${failed.body.id}"]`);
    await shoot("dead-letters");
    await page.check(`#dead-letters tr[data-id="${failed.body.id}"] input[type=checkbox]`);
    await page.click("#replay");
    await page.waitForSelector(`#dead-letters tr[data-id="${failed.body.id}"] .result-ok`);
    await expect.poll(async () => (await gatewayApi(`/v1/messages/${failed.body.id}`)).body.status, { timeout: 15_000 }).toMatch(/sent|delivered|read/);
  });

  it("lists an automation dead letter beside the instance's breaker, replays it, and the handler gets the call", async () => {
    const automation = `/v1/instances/${tenant.instance}/automation`;
    const put = await gatewayApi(automation, { method: "PUT", json: { url: `${bot.url}/bot/console`, maxAttempts: 1 } });
    expect(put.status).toBe(200);
    // The handler fails its first call; with one attempt allowed, that message is a dead letter.
    const scripted = await fetch(`${bot.url}/_bot/console`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ secret: put.body.secret, fail: 1 }),
    });
    expect(scripted.ok).toBe(true);
    // The instance's page shows its automation's breaker; the dead letters page lists them per instance.
    await page.goto(`${gateway.url}/console/#/instances`);
    await page.waitForSelector(`[data-instance="${tenant.instance}"] [data-automation=closed]`);
    await page.click(".bar nav a[href='#/dead-letters']");
    await page.waitForSelector(`#automation-breakers li[data-instance="${tenant.instance}"][data-breaker=closed]`);
    await page.waitForSelector("#live.on");
    await sim("/_sim/inbound", { instance: tenant.instance, from: "5511987650004", text: "Qual o horário de hoje?", pushName: "Rui", wait: true });
    // It appears without a reload (the automation.failed event).
    const row = "#automation-dead-letters tr[data-inbound]";
    await page.waitForSelector(`${row} >> text=Qual o horário de hoje?`);
    expect(await page.textContent(row)).toContain("HTTP 500");
    await shoot("automation-dead-letters");
    await page.check(`${row} input[type=checkbox]`);
    await page.click("#automation-replay");
    await page.waitForSelector(`${row} .result-ok`);
    // The handler got the message again, answered it this time, and the reply went out.
    const calls = () => bot.calls.filter((c) => c.path === "console" && c.texts.includes("Qual o horário de hoje?"));
    await expect.poll(() => calls().map((c) => c.status), { timeout: 15_000 }).toEqual([500, 200]);
    expect(calls().every((c) => c.verified)).toBe(true);
    await expect
      .poll(async () => (await gatewayApi("/v1/messages?to=5511987650004")).body.data.map((m: { text?: string }) => m.text), { timeout: 15_000 })
      .toContain("echo: Qual o horário de hoje?");
    expect((await gatewayApi(`${automation}/dead-letters`)).body.data).toEqual([]);
    // Later steps play inbound messages of their own: no handler for them.
    const removed = await fetch(`${gateway.url}${automation}`, { method: "DELETE", headers: { authorization: `Bearer ${tenant.apiKey}` } });
    expect(removed.status).toBe(204);
  });

  it("cancels a scheduled message from its page", async () => {
    const sendAt = new Date(Date.now() + 3600_000).toISOString();
    const scheduled = await gatewayApi("/v1/messages", {
      json: { instance: tenant.instance, to: "5511987650003", text: "Lembrete: consulta amanhã às 9h", sendAt },
    });
    expect(scheduled.body.status).toBe("scheduled");
    await page.goto(`${gateway.url}/console/#/messages/${scheduled.body.id}`);
    await page.waitForSelector("#cancel");
    await shoot("message-scheduled");
    await page.click("#cancel");
    await page.waitForSelector("#history [data-status=canceled]");
    expect((await gatewayApi(`/v1/messages/${scheduled.body.id}`)).body.status).toBe("canceled");
  });

  it("shows one contact's conversation, inbound messages arriving live", async () => {
    await page.goto(`${gateway.url}/console/#/conversations/5511987650001`);
    await page.waitForSelector("#timeline li.outbound");
    await sim("/_sim/inbound", { instance: tenant.instance, from: "5511987650001", text: "Obrigado! Chegou certinho.", pushName: "Maria" });
    await page.waitForSelector("#timeline li.inbound >> text=Chegou certinho");
    await shoot("conversation");
  });

  it("shows a disconnected number's QR code as it refreshes, then turns connected when scanned", async () => {
    await sim("/_sim/connection", { instance: tenant.instance, state: "close", wait: true });
    await page.goto(`${gateway.url}/console/#/instances`);
    const card = `[data-instance="${tenant.instance}"]`;
    // Asking Evolution for the code starts pairing: the number shows close, then connecting.
    await page.waitForSelector(`${card} img.qr`);
    await page.waitForSelector(`${card} :is([data-status=close], [data-status=connecting])`);
    const first = await page.getAttribute(`${card} img.qr`, "src");
    expect(first).toMatch(/^data:image\/png;base64,/);
    // Evolution refreshes the code (qrcode.updated); the console shows the new one.
    await expect.poll(async () => Number(await page.getAttribute(`${card} img.qr`, "data-count")), { timeout: 15_000 }).toBeGreaterThanOrEqual(2);
    expect(await page.getAttribute(`${card} img.qr`, "src")).not.toBe(first);
    await shoot("instances-qr");
    await sim(`/_sim/instances/${tenant.instance}/scan`, { wait: true });
    await page.waitForSelector(`${card} [data-status=open]`, { timeout: 10_000 });
    expect(await page.$(`${card} img.qr`)).toBeNull();
    await shoot("instances");
  });

  it("signs out, forgets the key, and returns to sign-in when the session expires or the key is revoked", async () => {
    await page.goto(`${gateway.url}/console/#/callbacks`);
    await page.waitForSelector("h1 >> text=Callbacks");
    await shoot("callbacks");
    await page.click("#sign-out");
    await page.waitForSelector("#sign-in:not([hidden])");
    expect(await page.evaluate(() => Object.keys(sessionStorage))).toEqual([]);

    // An idle session expires.
    await signIn(page, tenant.apiKey);
    await page.evaluate(() => {
      const key = "mensageiro.console.session";
      const s = JSON.parse(sessionStorage.getItem(key) ?? "{}");
      sessionStorage.setItem(key, JSON.stringify({ ...s, lastUsed: Date.now() - 3 * 3600_000 }));
    });
    await page.reload();
    await expect.poll(() => page.textContent("#sign-in-error"), { timeout: 15_000 }).toContain("expired");

    // Background refreshes are not use: a tab left on a page that redraws itself (instances, every
    // 15 s) still signs out once the idle time is up, with no reload and no click.
    await signIn(page, tenant.apiKey);
    await page.goto(`${gateway.url}/console/#/instances`);
    await page.waitForSelector("h1 >> text=Instances");
    await page.evaluate(() => {
      const key = "mensageiro.console.session";
      const s = JSON.parse(sessionStorage.getItem(key) ?? "{}");
      // 20 s of idle time left: at least one background redraw falls inside it.
      sessionStorage.setItem(key, JSON.stringify({ ...s, lastUsed: Date.now() - 30 * 60_000 + 20_000 }));
    });
    await page.waitForSelector("#sign-in:not([hidden])", { timeout: 60_000 });
    expect(await page.textContent("#sign-in-error")).toContain("expired");
    expect(await page.evaluate(() => sessionStorage.getItem("mensageiro.console.session"))).toBeNull();

    // A key revoked while signed in.
    const admin = { authorization: "Bearer e2e-admin-token", "content-type": "application/json" };
    const second = (await (await fetch(`${gateway.url}/v1/admin/tenants/${tenant.tenantId}/keys`, { method: "POST", headers: admin })).json()) as {
      id: string;
      apiKey: string;
    };
    await signIn(page, second.apiKey);
    await fetch(`${gateway.url}/v1/admin/tenants/${tenant.tenantId}/keys/${second.id}`, { method: "DELETE", headers: admin });
    // No click needed: the revocation closes the console's live stream, and its reconnect finds the key gone.
    await expect.poll(() => page.textContent("#sign-in-error"), { timeout: 15_000 }).toContain("no longer valid");
    expect(await page.evaluate(() => sessionStorage.getItem("mensageiro.console.session"))).toBeNull();
    // Nothing the console did left this origin, failed, or broke the page's CSP (module scripts included).
    expect(watch.foreign).toEqual([]);
    expect(watch.pageErrors).toEqual([]);
    expect(watch.cspViolations).toEqual([]);
  });
});
