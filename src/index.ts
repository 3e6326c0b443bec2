// mensageiro Worker: HTTP routes, the sends queue consumer, the cron sweep, and the Durable Objects.
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import type { AppEnv } from "./app-env.ts";
import { requireApiKey } from "./auth/api-keys.ts";
import { database } from "./db/client.ts";
import { ApiError, errorResponse } from "./errors.ts";
import { consumeCallbacks } from "./callbacks/deliver.ts";
import { consumeSends } from "./queue/sends.ts";
import { consumeWebhooks } from "./queue/webhooks.ts";
import { parkWebhooks } from "./webhooks/parked.ts";
import { sweep } from "./sweep/sweeper.ts";
import { wakeOnce } from "./sweep/wake.ts";
import { contactRoutes } from "./routes/contacts.ts";
import { statsRoutes } from "./routes/stats.ts";
import { eventRoutes } from "./routes/events.ts";
import { streamRoutes, ticketRoutes } from "./routes/stream.ts";
import { webhookRoutes } from "./routes/webhooks.ts";
import { channelWebhookRoutes } from "./routes/channel-webhooks.ts";
import { adminRoutes } from "./routes/admin.ts";
import { compatRoutes } from "./routes/compat.ts";
import { healthRoutes } from "./routes/health.ts";
import { metricsRoutes } from "./routes/metrics.ts";
import { instanceRoutes } from "./routes/instances.ts";
import { automationRoutes } from "./routes/automation.ts";
import { handoffRoutes } from "./routes/handoff.ts";
import { conversationRoutes, readRoutes } from "./routes/conversations.ts";
import { messageRoutes } from "./routes/messages.ts";
import { chatHistoryRoutes, chatRoutes, visitorRoutes } from "./routes/web-chat.ts";
import { chatPageRoutes } from "./routes/chat-pages.ts";
import { referenceRoutes } from "./routes/reference.ts";
import { consoleRoutes } from "./routes/console.ts";
import { callbackRoutes } from "./routes/callbacks.ts";
import { deadLetterRoutes } from "./routes/dead-letters.ts";
import { rateLimit } from "./limits/rate-limit.ts";
import { log } from "./observability/log.ts";
import { requestLog } from "./observability/request-log.ts";

export { ContactLane } from "./lanes/contact-lane.ts";
export { InstanceGovernor } from "./lanes/instance-governor.ts";
export { RateLimiter } from "./limits/rate-limiter.ts";
export { AutomationLane } from "./automation/lane.ts";
export { TenantStream } from "./stream/tenant-stream.ts";
export { VisitorChat } from "./webhooks/visitor-chat.ts";

export const app = new Hono<AppEnv>();

// The tenant API: an API key and its rate limit in front of every route.
const tenantApi = new Hono<AppEnv>()
  .use("*", requireApiKey, rateLimit)
  .route("/instances", automationRoutes)
  .route("/instances", handoffRoutes)
  .route("/instances", readRoutes)
  .route("/instances", visitorRoutes)
  .route("/conversations", conversationRoutes)
  .route("/instances", instanceRoutes)
  .route("/messages", messageRoutes)
  .route("/events/stream/tickets", ticketRoutes)
  .route("/events", eventRoutes)
  .route("/contacts", contactRoutes)
  .route("/stats", statsRoutes)
  .route("/callbacks", callbackRoutes)
  .route("/dead-letters", deadLetterRoutes);

// One chain, so that the app's type carries every route (`AppType`, for the typed client).
const routes = app
  .use("*", requestId())
  .use("*", requestLog)
  .use("*", async (c, next) => {
    c.set("db", database(c.env.DB));
    await next();
  })
  .route("/", referenceRoutes(app))
  .route("/", consoleRoutes)
  .route("/chat", chatPageRoutes)
  .route("/health", healthRoutes)
  .route("/metrics", metricsRoutes)
  .route("/v1/admin", adminRoutes)
  .route("/webhooks/evolution", webhookRoutes)
  .route("/webhooks/telegram", channelWebhookRoutes("telegram"))
  // Before the tenant API: a browser's WebSocket carries a ticket, not an Authorization header.
  .route("/v1/events/stream", streamRoutes)
  // A visitor's browser carries its signed token, not an API key.
  .route("/v1/chat/history", chatHistoryRoutes)
  .route("/v1/chat", chatRoutes)
  .route("/ws/chat", chatRoutes)
  .route("/v1", tenantApi)
  .route("/api", compatRoutes);

/** Every route with its inputs and answers, for `hc<AppType>` (src/client.ts). */
export type AppType = typeof routes;

app.notFound(() => {
  throw new ApiError("not_found", "No such route.");
});
app.onError((err, c) => errorResponse(c, err));

export default {
  fetch(request, env, ctx) {
    wakeOnce(env, ctx);
    return app.fetch(request, env, ctx);
  },
  async queue(batch, env, ctx) {
    wakeOnce(env, ctx);
    // Each deploy environment suffixes its queue names (wrangler.toml QUEUE_SUFFIX).
    const queue = env.QUEUE_SUFFIX && batch.queue.endsWith(env.QUEUE_SUFFIX) ? batch.queue.slice(0, -env.QUEUE_SUFFIX.length) : batch.queue;
    if (queue === "mensageiro-sends") return consumeSends(batch, env);
    if (queue === "mensageiro-webhooks") return consumeWebhooks(batch, env, ctx);
    if (queue === "mensageiro-callbacks") return consumeCallbacks(batch, env);
    if (queue === "mensageiro-webhooks-dlq") return parkWebhooks(batch, env);
    log("error", "batch from an unknown queue", { queue: batch.queue });
  },
  async scheduled(_controller, env, ctx) {
    ctx.waitUntil(sweep(env));
  },
} satisfies ExportedHandler<Env>;
