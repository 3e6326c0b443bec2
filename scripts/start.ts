// `npm start`: the gateway under `wrangler dev` (local D1, Queues, Durable Objects) with the
// simulator beside it (Evolution and the Telegram Bot API), a local tenant, a WhatsApp `demo`
// instance, a Telegram `demo-telegram` bot and a web chat `demo-web` (its page at /chat/demo), all
// answered by the echo bot. It prints a short summary; wrangler's own output goes to a log file.
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { startEchoBot } from "../simulator/echo-bot.ts";
import { demoTelegramBot } from "../simulator/app.ts";
import { startSimulator } from "../simulator/server.ts";
import { type Gateway, ROOT, startGateway } from "../tools/harness/gateway.ts";

const PORT = Number(process.env.PORT ?? 8787);
const SIM_PORT = Number(process.env.SIM_PORT ?? 8788);
const BOT_PORT = Number(process.env.BOT_PORT ?? 8789);
const GATEWAY = `http://127.0.0.1:${PORT}`;
const STATE_FILE = path.join(ROOT, ".state/local-tenant.json");
const LOG_FILE = path.join(ROOT, ".state/wrangler.log");
const WEB_DEMO = "demo-web";

mkdirSync(path.dirname(LOG_FILE), { recursive: true });
const logTail = (lines = 30) => readFileSync(LOG_FILE, "utf8").trimEnd().split("\n").slice(-lines).join("\n");

function devVars(): Record<string, string> {
  const file = path.join(ROOT, ".dev.vars");
  if (!existsSync(file)) {
    copyFileSync(path.join(ROOT, ".dev.vars.example"), file);
    console.log("Created .dev.vars from .dev.vars.example (edit it to change local secrets).");
  }
  const vars: Record<string, string> = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^\s*([A-Z0-9_]+)\s*=\s*(.*)\s*$/.exec(line);
    if (m?.[1] && m[2] !== undefined) vars[m[1]] = m[2].replace(/^"(.*)"$/, "$1");
  }
  return vars;
}

async function call(method: string, route: string, token: string, body?: unknown) {
  const res = await fetch(`${GATEWAY}${route}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: (await res.json()) as any };
}

type LocalState = { apiKey: string; tenantId: string; automationSecret?: string; automationSecrets?: Record<string, string> };
const readState = (): LocalState | undefined => (existsSync(STATE_FILE) ? (JSON.parse(readFileSync(STATE_FILE, "utf8")) as LocalState) : undefined);
const writeState = (state: LocalState) => {
  mkdirSync(path.dirname(STATE_FILE), { recursive: true });
  writeFileSync(STATE_FILE, JSON.stringify(state, null, 2), { mode: 0o600 });
};

// A demo instance's automation points at the echo bot. Its secret is shown only on creation, so it
// is kept in the local state file; without it the automation is recreated to get a new one.
async function demoAutomation(apiKey: string, botUrl: string, instance = "demo"): Promise<string> {
  const route = `/v1/instances/${instance}/automation`;
  const body = { url: `${botUrl}/bot/${instance}` };
  const saved = readState();
  let put = await call("PUT", route, apiKey, body);
  let secret: string | undefined = put.body.secret ?? (instance === "demo" ? saved?.automationSecret : saved?.automationSecrets?.[instance]);
  if (!secret) {
    await fetch(`${GATEWAY}${route}`, { method: "DELETE", headers: { authorization: `Bearer ${apiKey}` } });
    put = await call("PUT", route, apiKey, body);
    secret = put.body.secret;
  }
  if (put.status !== 200 || !secret) throw new Error(`could not set up the demo automation: ${JSON.stringify(put.body)}`);
  const state = readState();
  if (state)
    writeState(
      instance === "demo" ? { ...state, automationSecret: secret } : { ...state, automationSecrets: { ...state.automationSecrets, [instance]: secret } },
    );
  await fetch(`${botUrl}/_bot/${instance}`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify({ secret }) });
  return secret;
}

// Reuses the local tenant across restarts (local D1 persists in .wrangler/state).
async function localTenant(adminToken: string): Promise<string> {
  if (existsSync(STATE_FILE)) {
    const saved = JSON.parse(readFileSync(STATE_FILE, "utf8")) as { apiKey: string };
    if ((await call("GET", "/v1/instances", saved.apiKey)).status === 200) return saved.apiKey;
  }
  const created = await call("POST", "/v1/admin/tenants", adminToken, { name: "local" });
  if (created.status !== 201) throw new Error(`could not create the local tenant: ${JSON.stringify(created.body)}`);
  writeState({ apiKey: created.body.apiKey, tenantId: created.body.tenant.id });
  return created.body.apiKey;
}

async function main() {
  const vars = devVars();
  const adminToken = vars.ADMIN_TOKEN;
  if (!adminToken) throw new Error("ADMIN_TOKEN is missing from .dev.vars");
  console.log(`Starting mensageiro (wrangler's output: ${path.relative(ROOT, LOG_FILE)})…`);
  appendFileSync(LOG_FILE, `\n──── npm start, ${new Date().toISOString()} ────\n`);

  const simulator = await startSimulator({ port: SIM_PORT, latencyMs: 300, telegramBots: [demoTelegramBot] });
  const bot = await startEchoBot({ port: BOT_PORT, log: (line) => console.log(line) });

  // WEB_CHAT_DEMO: the web instance /chat/demo serves a page for (known once the local tenant exists).
  const webChatDemo = (tenantId: string | undefined): Record<string, string> => (tenantId ? { WEB_CHAT_DEMO: `${tenantId}/${WEB_DEMO}` } : {});
  const knownTenant = readState()?.tenantId;
  let gateway: Gateway;
  try {
    // The local state wrangler uses by default, with the secrets of .dev.vars.
    gateway = await startGateway({
      persistDir: path.join(ROOT, ".wrangler/state"),
      port: PORT,
      devVars: true,
      logLevel: "log",
      logFile: LOG_FILE,
      readyTimeoutMs: 120_000,
      vars: webChatDemo(knownTenant),
      onExit: (code) => {
        console.error(`wrangler dev exited (${code}); the end of ${LOG_FILE}:\n${logTail()}`);
        void Promise.all([simulator.close(), bot.close()]).then(() => process.exit(code ?? 1));
      },
    });
  } catch (err) {
    await Promise.all([simulator.close(), bot.close()]);
    throw err;
  }
  const shutdown = async () => {
    await gateway.halt();
    await simulator.close();
    await bot.close();
    process.exit(0);
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);

  try {
    await setUp(adminToken, knownTenant);
  } catch (err) {
    // Nothing left running behind a failed start.
    await gateway.halt();
    await Promise.all([simulator.close(), bot.close()]);
    throw err;
  }

  async function setUp(adminToken: string, knownTenant: string | undefined) {
    // wrangler dev never fires cron triggers by itself: run the sweep every minute as the deployed cron would.
    setInterval(() => void fetch(`${GATEWAY}/cdn-cgi/local/scheduled?cron=*+*+*+*+*`).catch(() => undefined), 60_000).unref();
    const apiKey = await localTenant(adminToken);
    const tenantId = readState()?.tenantId;
    if (tenantId !== knownTenant) {
      // A new local tenant (the first start): the demo page needs its id, given to wrangler at start.
      await gateway.restart(webChatDemo(tenantId));
    }
    const simKey = "demo-evolution-key";
    const instance = await call("PUT", "/v1/instances/demo", apiKey, { evolutionUrl: simulator.url, evolutionApiKey: simKey, ratePerMinute: 600 });
    if (instance.status >= 300) throw new Error(`could not register the demo instance: ${JSON.stringify(instance.body)}`);
    // The simulator answers as instance "demo" and sends Evolution's webhooks to the gateway.
    await fetch(`${simulator.url}/_sim/instances/demo`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ apikey: simKey, webhookUrl: instance.body.webhookUrl }),
    });
    // Inbound automation: the echo bot (verifying the signature) answers whatever a contact writes to demo.
    await demoAutomation(apiKey, bot.url);

    // Telegram: the demo bot at the simulator's Bot API. The gateway checks its token (getMe) and sets
    // its webhook to itself with a secret; the simulator then delivers updates there.
    const telegram = await call("PUT", "/v1/instances/demo-telegram", apiKey, {
      channel: "telegram",
      telegram: { botToken: demoTelegramBot.token, apiUrl: simulator.url },
    });
    if (telegram.status >= 300) throw new Error(`could not register the demo bot: ${JSON.stringify(telegram.body)}`);
    await demoAutomation(apiKey, bot.url, "demo-telegram");
    // A person who already wrote to the bot (a bot cannot start a conversation): chat 424242001.
    await fetch(`${simulator.url}/_sim/telegram/chats`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: demoTelegramBot.token, chatId: 424242001, first_name: "Ana" }),
    });

    // The web chat: the demo page at /chat/demo mints its visitors' tokens for this instance.
    const web = await call("PUT", `/v1/instances/${WEB_DEMO}`, apiKey, { channel: "web" });
    if (web.status >= 300) throw new Error(`could not register the web chat demo: ${JSON.stringify(web.body)}`);
    await demoAutomation(apiKey, bot.url, WEB_DEMO);

    const auth = `-H 'Authorization: Bearer ${apiKey}'`;
    console.log(`
mensageiro is running. Ctrl-C stops everything.

  Gateway     ${GATEWAY}  (wrangler dev: local D1, Queues, Durable Objects)
  Console     ${GATEWAY}/console/  (sign in with the API key)
  API docs    ${GATEWAY}/docs
  Simulator   ${simulator.url}  (Evolution API and Telegram Bot API)
  Echo bot    ${bot.url}  (the automation handler of every demo instance)
  Log         ${path.relative(ROOT, LOG_FILE)}  (wrangler's output)

  API key (tenant "local"): ${apiKey}

Each channel's demo loop (the echo bot answers "echo: …"):

  Web chat    open ${GATEWAY}/chat/demo in a browser and write.

  WhatsApp    instance demo: a contact writes, then the conversation:
    curl -s ${simulator.url}/_sim/inbound -H 'Content-Type: application/json' \\
      -d '{"instance":"demo","from":"5511987654321","text":"oi","pushName":"Ana"}'
    curl -s ${GATEWAY}/v1/contacts/5511987654321/messages ${auth}

  Telegram    instance demo-telegram (@${demoTelegramBot.username}): Ana writes to the bot, then the conversation:
    curl -s ${simulator.url}/_sim/telegram/inbound -H 'Content-Type: application/json' \\
      -d '{"token":"${demoTelegramBot.token}","chatId":424242001,"text":"oi","from":{"id":424242001,"first_name":"Ana"}}'
    curl -s ${GATEWAY}/v1/contacts/424242001/messages ${auth}

  Send one    (instance demo, demo-telegram to 424242001, or demo-web to a visitor id):
    curl -s ${GATEWAY}/v1/messages ${auth} -H 'Content-Type: application/json' \\
      -d '{"instance":"demo","to":"5511987654321","text":"Olá do mensageiro!"}'
`);
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
