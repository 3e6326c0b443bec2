// The web chat widget in a real browser against the local runtime (wrangler dev): the demo page at
// /chat/demo, as `npm start` serves it, with the echo bot as the instance's automation. A visitor
// writes and sees the reply, reloads and sees the conversation, loses the socket and, on its
// return, sees what was sent while away. Screenshots at phone and desktop widths go to a temporary
// folder, or to docs/channels/ with WIDGET_SCREENSHOTS=1.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Browser, Page, WebSocketRoute } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EchoBot, startEchoBot } from "../../simulator/echo-bot.ts";
import { launchChromium, openPage, type PageWatch, screenshotFolder, shoot, widths } from "../support/browser.ts";
import { type Gateway, startGateway } from "../../tools/harness/gateway.ts";

const INSTANCE = "demo-web";
const shots = screenshotFolder("WIDGET_SCREENSHOTS", "channels");
const persistDir = mkdtempSync(path.join(tmpdir(), "mensageiro-widget-"));

let gateway: Gateway;
let bot: EchoBot;
let browser: Browser;
let page: Page;
let watch: PageWatch;
let apiKey: string;

async function gatewayApi(pathname: string, init: { method?: string; json?: unknown } = {}) {
  const res = await fetch(`${gateway.url}${pathname}`, {
    method: init.method ?? (init.json ? "POST" : "GET"),
    headers: { authorization: `Bearer ${apiKey}`, ...(init.json ? { "content-type": "application/json" } : {}) },
    body: init.json ? JSON.stringify(init.json) : undefined,
  });
  return { status: res.status, body: (await res.json()) as any };
}

const bubbles = (direction: "inbound" | "outbound") => page.locator(`li[data-direction=${direction}]`);
const visitorId = () => page.locator("#visitor").textContent();

beforeAll(async () => {
  bot = await startEchoBot();
  // The demo page names its tenant in WEB_CHAT_DEMO, given at start: set the tenant up on a first run
  // of the runtime, then run it again on the same state with the var (as `npm start` does on a first start).
  const setup = await startGateway({ persistDir });
  let demo: string;
  try {
    const created = await fetch(`${setup.url}/v1/admin/tenants`, {
      method: "POST",
      headers: { authorization: "Bearer e2e-admin-token", "content-type": "application/json" },
      body: JSON.stringify({ name: "widget" }),
    });
    expect(created.status).toBe(201);
    const tenant = (await created.json()) as { tenant: { id: string }; apiKey: string };
    apiKey = tenant.apiKey;
    const auth = { authorization: `Bearer ${apiKey}`, "content-type": "application/json" };
    const web = await fetch(`${setup.url}/v1/instances/${INSTANCE}`, { method: "PUT", headers: auth, body: JSON.stringify({ channel: "web" }) });
    expect(web.status).toBe(201);
    const automation = await fetch(`${setup.url}/v1/instances/${INSTANCE}/automation`, {
      method: "PUT",
      headers: auth,
      body: JSON.stringify({ url: `${bot.url}/bot/${INSTANCE}` }),
    });
    expect(automation.status).toBe(200);
    const { secret } = (await automation.json()) as { secret: string };
    await fetch(`${bot.url}/_bot/${INSTANCE}`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify({ secret }) });
    demo = `${tenant.tenant.id}/${INSTANCE}`;
  } finally {
    await setup.halt();
  }
  gateway = await startGateway({ persistDir, vars: { WEB_CHAT_DEMO: demo } });
  browser = await launchChromium();
  watch = await openPage(browser, gateway.url);
  page = watch.page;
});
afterAll(async () => {
  await browser?.close();
  await gateway?.stop();
  await bot?.close();
  rmSync(persistDir, { recursive: true, force: true });
});

describe("the web chat widget on /chat/demo", () => {
  it("sends what the visitor types, shows the echo bot's reply and reads it; after a reload the conversation is still there", async () => {
    await page.goto(`${gateway.url}/chat/demo`);
    await page.waitForSelector(".state.on");
    await page.getByLabel("Your message").fill("Olá! Meu pedido já saiu?");
    await page.keyboard.press("Enter");
    await expect.poll(() => bubbles("outbound").allTextContents(), { timeout: 30_000 }).toEqual([expect.stringContaining("echo: Olá! Meu pedido já saiu?")]);
    expect(await bubbles("inbound").allTextContents()).toEqual([expect.stringContaining("Olá! Meu pedido já saiu?")]);
    expect(await page.getByLabel("Your message").inputValue()).toBe("");

    // The gateway's side: the handler got the visitor's message once, its one reply went to the
    // visitor, and the page acknowledged and read it.
    const visitor = (await visitorId())!;
    expect(bot.calls.filter((c) => c.contact === visitor).map((c) => c.texts)).toEqual([["Olá! Meu pedido já saiu?"]]);
    const sent = await gatewayApi(`/v1/messages?instance=${INSTANCE}`);
    expect(sent.body.data.map((m: any) => [m.to, m.text])).toEqual([[visitor, "echo: Olá! Meu pedido já saiu?"]]);
    const replyId = sent.body.data[0].id as string;
    await expect.poll(async () => (await gatewayApi(`/v1/messages/${replyId}`)).body.status, { timeout: 15_000 }).toBe("read");
    await shoot(page, shots, "web-chat");

    await page.reload();
    await page.waitForSelector(".state.on");
    await expect
      .poll(() => page.locator("li").allTextContents(), { timeout: 15_000 })
      .toEqual([expect.stringContaining("Olá! Meu pedido já saiu?"), expect.stringContaining("echo: Olá! Meu pedido já saiu?")]);
    expect(await bubbles("inbound").count()).toBe(1);
    expect(await visitorId()).toBe(visitor);
  });

  it("when the server closes the socket, reconnects and shows a message sent while the visitor was away", async () => {
    // Every socket the page opens goes through here: the test can close it from the server's side
    // and keep the page away for a while.
    const routes: WebSocketRoute[] = [];
    let away = false;
    await page.routeWebSocket(/\/v1\/chat\?/, (route) => {
      if (away) return void route.close({ code: 1011, reason: "away" });
      route.connectToServer();
      routes.push(route);
    });
    await page.reload();
    await page.waitForSelector(".state.on");
    const visitor = (await visitorId())!;
    expect(routes).toHaveLength(1);

    away = true;
    await routes[0]!.close({ code: 1001, reason: "going away" });
    await expect.poll(() => page.locator(".state").textContent()).toMatch(/Reconnecting|Connecting/);
    const sent = await gatewayApi("/v1/messages", { json: { instance: INSTANCE, to: visitor, text: "Seu pedido saiu para entrega 🚚" } });
    expect(sent.status).toBe(202);
    // Stored for the visitor with no tab open: nobody has acknowledged it.
    await expect.poll(async () => (await gatewayApi(`/v1/messages/${sent.body.id}`)).body.status, { timeout: 15_000 }).toBe("sent");
    expect(await page.locator(`li[data-message-id="${sent.body.id}"]`).count()).toBe(0);

    away = false;
    await page.locator(`li[data-message-id="${sent.body.id}"]`).waitFor({ timeout: 45_000 });
    expect(await page.locator(`li[data-message-id="${sent.body.id}"]`).textContent()).toContain("Seu pedido saiu para entrega 🚚");
    await page.waitForSelector(".state.on");
    expect(routes.length).toBeGreaterThanOrEqual(2);
    await expect.poll(async () => (await gatewayApi(`/v1/messages/${sent.body.id}`)).body.status, { timeout: 15_000 }).toBe("read");
    // Shown once, after what came before.
    const texts = await page.locator("li").allTextContents();
    expect(texts.filter((t) => t.includes("Seu pedido saiu"))).toHaveLength(1);
    expect(texts.at(-1)).toContain("Seu pedido saiu para entrega");
    await page.unrouteAll();
  });

  it("works from the keyboard at 360 px, with no request to another host and no CSP violation", async () => {
    await page.setViewportSize(widths.phone);
    await page.goto(`${gateway.url}/chat/demo`);
    await page.waitForSelector(".state.on");
    // The panel fits the phone's width: nothing scrolls sideways.
    expect(await page.evaluate<number>("document.documentElement.scrollWidth")).toBeLessThanOrEqual(widths.phone.width);
    await page.getByLabel("Your message").focus();
    await page.keyboard.type("oi pelo teclado");
    await page.keyboard.press("Enter");
    await expect.poll(() => bubbles("outbound").allTextContents(), { timeout: 30_000 }).toContainEqual(expect.stringContaining("echo: oi pelo teclado"));
    await page.keyboard.press("Tab");
    expect(await page.evaluate<string | undefined>("document.activeElement?.shadowRoot?.activeElement?.textContent")).toBe("Send");
    await page.setViewportSize(widths.desktop);
    expect(watch.foreign).toEqual([]);
    expect(watch.cspViolations).toEqual([]);
  });

  it("without a target, a corner button opens and closes the panel from the keyboard", async () => {
    await page.setViewportSize(widths.phone);
    await page.goto(`${gateway.url}/chat/demo`);
    await page.waitForSelector(".state.on");
    // A second widget on the page, as a site embeds it by default: in the corner.
    await page.evaluate(
      `fetch("/chat/demo/token").then((r) => r.json()).then(({ token }) => { window.corner = MensageiroChat.open({ token, title: "Ajuda" }); })`,
    );
    const launcher = page.getByRole("button", { name: "Ajuda" });
    await launcher.waitFor();
    expect(await launcher.getAttribute("aria-expanded")).toBe("false");
    const panel = page.getByRole("region", { name: "Ajuda" });
    expect(await panel.isVisible()).toBe(false);
    await launcher.focus();
    await page.keyboard.press("Enter");
    await panel.waitFor();
    // Open: the message box has the focus, and the panel fits the phone's width.
    expect(await page.evaluate<string | undefined>("document.activeElement?.shadowRoot?.activeElement?.tagName")).toBe("TEXTAREA");
    const box = (await panel.boundingBox())!;
    expect(box.x).toBeGreaterThanOrEqual(0);
    expect(box.x + box.width).toBeLessThanOrEqual(widths.phone.width);
    // It shows the same conversation as the first.
    await expect.poll(() => panel.locator("li").count()).toBeGreaterThan(0);
    await page.keyboard.press("Escape");
    await expect.poll(() => panel.isVisible()).toBe(false);
    expect(await launcher.getAttribute("aria-expanded")).toBe("false");
    // Closed: the focus is back on the button that opened it.
    expect(await page.evaluate<string | undefined>("document.activeElement?.shadowRoot?.activeElement?.textContent")).toBe("Ajuda");
    await page.evaluate("window.corner.close()");
    expect(await page.locator("[data-mensageiro-chat]").count()).toBe(1);
    await page.setViewportSize(widths.desktop);
  });
});
