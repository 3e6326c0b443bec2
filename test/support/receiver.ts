// A tiny HTTP receiver for tenant callbacks in tests: records every POST per path, and can be
// told to answer 500 for the next N requests to a path.
import { createServer, type IncomingMessage } from "node:http";

export type Received = { path: string; headers: Record<string, string>; body: string; at: number; status: number };

export async function startReceiver(): Promise<{ url: string; close(): Promise<void> }> {
  const received: Received[] = [];
  const failures = new Map<string, number>();
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
      failures.set(url.pathname.slice("/fail".length), Number(JSON.parse(body || "{}").times ?? 1));
      res.writeHead(204).end();
      return;
    }
    const left = failures.get(url.pathname) ?? 0;
    const status = left > 0 ? 500 : 200;
    if (left > 0) failures.set(url.pathname, left - 1);
    const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
    received.push({ path: url.pathname, headers, body, at: Date.now(), status });
    res.writeHead(status, { "content-type": "application/json" }).end('{"ok":true}');
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
