// A tiny HTTP receiver for tenant callbacks in tests: records every POST per path, and can be
// told to answer an error (500 unless told otherwise, with optional headers such as Retry-After)
// for the next N requests to a path: POST /fail/<path> {"times", "status"?, "headers"?}.
import { createServer, type IncomingMessage } from "node:http";

export type Received = { path: string; headers: Record<string, string>; body: string; at: number; status: number };

export async function startReceiver(): Promise<{ url: string; close(): Promise<void> }> {
  const received: Received[] = [];
  const failures = new Map<string, { left: number; status: number; headers: Record<string, string> }>();
  const read = (req: IncomingMessage) =>
    new Promise<string>((resolve) => {
      let body = "";
      req.on("data", (d) => (body += d));
      req.on("end", () => resolve(body));
    });
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const body = await read(req);
    if (req.method === "GET" && url.pathname.startsWith("/received/")) {
      const path = url.pathname.slice("/received".length);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(received.filter((r) => r.path === path)));
      return;
    }
    if (req.method === "POST" && url.pathname.startsWith("/fail/")) {
      const order = JSON.parse(body || "{}");
      failures.set(url.pathname.slice("/fail".length), { left: Number(order.times ?? 1), status: Number(order.status ?? 500), headers: order.headers ?? {} });
      res.writeHead(204).end();
      return;
    }
    const failure = failures.get(url.pathname);
    const failing = failure && failure.left > 0;
    const status = failing ? failure.status : 200;
    if (failing) failure.left -= 1;
    const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
    received.push({ path: url.pathname, headers, body, at: Date.now(), status });
    res.writeHead(status, { "content-type": "application/json", ...(failing ? failure.headers : {}) }).end('{"ok":true}');
  });
  // workerd reuses idle connections; Node closing them after its default 5 s races with that reuse
  // ("Network connection lost"). The client closes them instead (as the simulator does).
  server.keepAliveTimeout = 0;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
