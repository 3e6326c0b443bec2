// Serves the simulator over HTTP from Node, for test setup files, scripts and main.ts.
import type { AddressInfo } from "node:net";
import { serve, type Http2Bindings, type HttpBindings, type ServerType } from "@hono/node-server";
import { createSimulator, type SimulatorConfig } from "./app.ts";
import { dropHeader } from "./evolution.ts";
import type { SimulatorState } from "./state.ts";

export type StartOptions = Partial<SimulatorConfig> & {
  /** 0 (the default) picks a free port. */
  port?: number;
  hostname?: string;
  /** Log one line per request (true: console.log). */
  log?: boolean | ((line: string) => void);
};

export type RunningSimulator = { url: string; port: number; state: SimulatorState; close: () => Promise<void> };

export async function startSimulator(options: StartOptions = {}): Promise<RunningSimulator> {
  const { port = 0, hostname = "127.0.0.1", log, ...config } = options;
  const { app, state } = createSimulator(config);
  const logLine = log === true ? (line: string) => console.log(line) : log || undefined;

  const fetch = async (request: Request, env: HttpBindings | Http2Bindings): Promise<Response> => {
    const started = Date.now();
    const response = await app.fetch(request, env);
    const url = new URL(request.url);
    // A fault with status 0: reset the connection instead of answering, as a network failure.
    if (response.headers.has(dropHeader)) {
      env.incoming.socket.destroy();
      logLine?.(`${request.method} ${url.pathname} -> connection dropped`);
      return response;
    }
    logLine?.(`${request.method} ${url.pathname}${url.search} -> ${response.status} (${Date.now() - started} ms)`);
    return response;
  };

  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch, port, hostname }, () => resolve(s));
    s.once("error", reject);
  });
  // workerd keeps idle connections to reuse them; Node closing them after its default 5 s races
  // with that reuse, and a send fails as "Network connection lost". The client closes them instead.
  if ("keepAliveTimeout" in server) server.keepAliveTimeout = 0;
  const address = server.address();
  const bound = typeof address === "object" && address ? (address satisfies AddressInfo).port : port;

  return {
    url: `http://${hostname}:${bound}`,
    port: bound,
    state,
    close: () =>
      new Promise<void>((resolve) => {
        state.stop();
        if ("closeAllConnections" in server) server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
