// The baseline for the accept benchmark: a bare Hono route on the same runtime (wrangler dev),
// parsing the same JSON body and answering 202, with no auth, D1 or queue.
import { Hono } from "hono";

const app = new Hono();
app.post("/v1/messages", async (c) => {
  const body = await c.req.json<{ to?: string }>();
  return c.json({ id: crypto.randomUUID(), status: "queued", to: body.to ?? null }, 202);
});

export default app;
