// POST /webhooks/telegram/:token — a provider's webhooks in (Telegram now, the web chat next). The
// token in the path names the instance; the provider's secret header authenticates the request
// (wrong or missing: 401, nothing stored). A valid update is stored before the 2xx: Telegram holds
// a chat's next update until the previous one got its 2xx, so a durable store keeps per-chat order.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { dispatchInBackground } from "../callbacks/dispatch.ts";
import type { Channel } from "../contracts/channels.ts";
import { instances } from "../db/queries/index.ts";
import { ApiError } from "../errors.ts";
import { readJson } from "../http/body.ts";
import { errorField, log } from "../observability/log.ts";
import { documented } from "../openapi/describe.ts";
import { channelOf, providerFor } from "../providers/registry.ts";
import { storeInbound } from "../webhooks/apply.ts";

// An update is small (media come as file ids); this is far above any real one.
const MAX_UPDATE_BYTES = 1024 * 1024;

export function channelWebhookRoutes(channel: Exclude<Channel, "whatsapp">) {
  const routes = new Hono<AppEnv>();
  const provider = providerFor(channel);
  const inbound = provider.inbound;
  if (!inbound) throw new Error(`${channel} has no inbound webhooks`);
  routes.post(
    "/:token",
    documented({
      summary: `${channel === "telegram" ? "Telegram" : channel} webhook`,
      description:
        "Set by the gateway itself when the instance is registered (setWebhook with a secret_token). Requests without the instance's " +
        "X-Telegram-Bot-Api-Secret-Token are refused (401) and nothing is stored. Updates are deduplicated by update_id; " +
        "message, edited_message and callback_query are kept.",
      tags: ["Webhooks"],
      caller: "public",
      responses: {
        200: {
          description: "Stored (or a duplicate) before this answer.",
          schema: z.object({ received: z.literal(true), outcome: z.array(z.object({ dedupeKey: z.string(), outcome: z.enum(["stored", "duplicate"]) })) }),
        },
      },
      errors: ["unauthorized", "invalid_request", "unavailable"],
    }),
    async (c) => {
      const instance = await instances.byWebhookToken(c.var.db, c.req.param("token"));
      // The same answer for an unknown token and a wrong secret: neither says which it was.
      if (!instance || channelOf(instance.channel) !== channel || !(await inbound.verify(c.req.raw.headers, instance.secret))) {
        throw new ApiError("unauthorized", "Unknown webhook or wrong secret.");
      }
      const receivedAt = Date.now();
      const messages = inbound.parse(await readJson(c, MAX_UPDATE_BYTES), receivedAt);
      if (!messages) throw new ApiError("invalid_request", `Not a ${channel} update.`);
      const target = { tenantId: instance.tenant_id, instanceId: instance.id, instanceName: instance.name, channel };
      const stored = await storeInbound(c.env, c.var.db, target, messages, receivedAt).catch((err: unknown) => {
        log("error", "storing an inbound update failed; the provider retries it", { instance: instance.name, error: errorField(err) });
        // A non-2xx makes the provider deliver the update again.
        throw new ApiError("unavailable", "Could not store the update; retry.");
      });
      if (instance.callbacks === 1 && stored.some((s) => s.outcome === "stored")) dispatchInBackground(c.env, c.executionCtx);
      return c.json({ received: true as const, outcome: stored.map(({ dedupeKey, outcome }) => ({ dedupeKey, outcome })) });
    },
  );
  return routes;
}
