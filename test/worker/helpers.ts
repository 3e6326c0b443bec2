// Shared test steps: tenants, instances on the simulator, API calls, waiting for side effects.
import { createExecutionContext, runDurableObjectAlarm, waitOnExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { inject } from "vitest";
import { gatewayClient } from "../../src/client.ts";
import worker from "../../src/index.ts";
import { eventually as waitFor } from "../support/wait.ts";

export const ADMIN = "test-admin-token";
export const simulatorUrl = () => inject("simulatorUrl");

let counter = 0;
export const unique = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${(counter++).toString(36)}${Math.random().toString(36).slice(2, 6)}`;

export async function api(path: string, init: RequestInit & { json?: unknown; key?: string } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.key) headers.set("authorization", `Bearer ${init.key}`);
  let body = init.body;
  if (init.json !== undefined) {
    headers.set("content-type", "application/json");
    body = JSON.stringify(init.json);
  }
  return exports.default.fetch(new Request(`https://gateway.test${path}`, { ...init, headers, body }));
}

/** The typed client (src/client.ts) on the Worker under test; `key`: an API key or the admin token. */
export function gateway(key?: string) {
  return gatewayClient("https://gateway.test", { apiKey: key, fetch: (input, init) => exports.default.fetch(new Request(input, init)) });
}

/** POSTs JSON to the Worker with the bindings given (a captured queue, a failing D1, another
 *  setting...), and waits for the work it leaves running after its answer (its waitUntil). */
export async function postWith(bindings: Env, path: string, body: unknown, opts: { key?: string; headers?: Record<string, string> } = {}): Promise<Response> {
  const ctx = createExecutionContext();
  const headers: Record<string, string> = { "content-type": "application/json", ...opts.headers };
  if (opts.key) headers.authorization = `Bearer ${opts.key}`;
  const request = new Request<unknown, IncomingRequestCfProperties>(`https://gateway.test${path}`, { method: "POST", headers, body: JSON.stringify(body) });
  const res = await worker.fetch(request, bindings, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

/** Posts an Evolution webhook to the Worker with the bindings given (postWith). */
export const postWebhook = (bindings: Env, token: string, body: unknown) => postWith(bindings, `/webhooks/evolution/${token}`, body);

export async function json<T = any>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

export async function createTenant(name = unique("tenant")): Promise<{ id: string; key: string }> {
  const res = await gateway(ADMIN).v1.admin.tenants.$post({ json: { name } });
  if (res.status !== 201) throw new Error(`tenant create failed: ${res.status} ${await res.text()}`);
  const body = await res.json();
  return { id: body.tenant.id, key: body.apiKey };
}

export async function simulator(path: string, init: RequestInit & { json?: unknown } = {}): Promise<any> {
  const headers = new Headers(init.headers);
  let body = init.body;
  if (init.json !== undefined) {
    headers.set("content-type", "application/json");
    body = JSON.stringify(init.json);
  }
  const res = await fetch(`${simulatorUrl()}${path}`, { ...init, headers, body });
  if (!res.ok) throw new Error(`simulator ${path}: ${res.status} ${await res.text()}`);
  return res.status === 204 ? undefined : res.json();
}

/** A tenant with one instance registered at the simulator (unique names, so test files do not collide). */
export async function setupTenant(opts: { ratePerMinute?: number } = {}) {
  const tenant = await createTenant();
  const instance = unique("inst");
  const evolutionKey = unique("evo-key");
  await simulator(`/_sim/instances/${instance}`, { method: "PUT", json: { apikey: evolutionKey } });
  const res = await gateway(tenant.key).v1.instances[":name"].$put({
    param: { name: instance },
    json: { evolutionUrl: simulatorUrl(), evolutionApiKey: evolutionKey, ratePerMinute: opts.ratePerMinute ?? 6000 },
  });
  if (res.status !== 201) throw new Error(`instance register failed: ${res.status} ${await res.text()}`);
  const { id: instanceId } = (await env.DB.prepare("SELECT id FROM instances WHERE name = ?").bind(instance).first<{ id: string }>())!;
  return { ...tenant, instance, instanceId, evolutionKey };
}

export type SimCall = {
  seq: number;
  at: number;
  answeredAt?: number;
  instance: string;
  route: string;
  number: string;
  body: any;
  status: number;
  keyId?: string;
};

export async function simCalls(instance: string): Promise<SimCall[]> {
  return (await simulator(`/_sim/calls?instance=${encodeURIComponent(instance)}`)).calls;
}

/** Polls `probe` (vi.waitFor, every 50 ms) until it gives a truthy value, and returns that value. */
export function eventually<T>(probe: () => Promise<T | undefined | false>, timeoutMs = 15_000, what = "condition"): Promise<T> {
  return waitFor(probe, { timeout: timeoutMs, what });
}

export async function messageRow(id: string) {
  return env.DB.prepare("SELECT * FROM messages WHERE id = ?").bind(id).first<Record<string, any>>();
}

export async function waitForStatus(id: string, statuses: string[], timeoutMs = 15_000) {
  return eventually(
    async () => {
      const row = await messageRow(id);
      return row && statuses.includes(row.status) ? row : undefined;
    },
    timeoutMs,
    `message ${id} to reach ${statuses.join("/")}`,
  );
}

export function laneStub(tenantId: string, instanceId: string, to: string) {
  return env.LANES.get(env.LANES.idFromName(`${tenantId}:${instanceId}:${to}`));
}

/** Makes the lane's pending retry due now and fires its alarm: time passes without sleeping. */
export async function fireRetry(lane: ReturnType<typeof laneStub>): Promise<boolean> {
  await lane.endWaits();
  return runDurableObjectAlarm(lane);
}

export async function send(key: string, body: Record<string, unknown>, headers: Record<string, string> = {}) {
  return api("/v1/messages", { method: "POST", key, json: body, headers });
}
