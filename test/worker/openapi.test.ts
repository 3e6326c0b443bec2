// The contract: GET /openapi.json is valid OpenAPI 3.1 and documents every route the Worker
// registers, each with its answers and the error shape; GET /docs serves the reference locally.
import { validate } from "@hyperjump/json-schema/openapi-3-1";
import { beforeAll, describe, expect, it } from "vitest";
import { app } from "../../src/index.ts";
import { api, json } from "./helpers.ts";

type Operation = { responses?: Record<string, { headers?: Record<string, unknown>; content?: Record<string, { schema?: unknown }> }>; security?: unknown[] };
let doc: {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown>; headers?: Record<string, unknown> };
};

beforeAll(async () => {
  const res = await api("/openapi.json");
  expect(res.status).toBe(200);
  doc = await json(res);
});

// Hono's "/v1/messages/:id" is OpenAPI's "/v1/messages/{id}".
const openApiPath = (path: string) => path.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?\??/g, "{$1}");

describe("GET /openapi.json", () => {
  it("is a valid OpenAPI 3.1 document", async () => {
    expect(doc.openapi).toMatch(/^3\.1\./);
    const output = await validate("https://spec.openapis.org/oas/3.1/schema-base", await json(await api("/openapi.json")), "BASIC");
    expect(output.valid, JSON.stringify(output.valid ? [] : output.errors?.slice(0, 5))).toBe(true);
  });

  it("documents every route registered in the app", () => {
    // A catch-all ("/console/*", static files) has no OpenAPI form; it is still described by documented().
    const routes = app.routes.filter((r) => r.method !== "ALL" && !r.path.includes("*")).map((r) => `${r.method} ${openApiPath(r.path)}`);
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    expect(routes.length).toBeGreaterThan(20);
    expect([...new Set(routes)].filter((r) => !documented.includes(r))).toEqual([]);
  });

  it("gives every operation a success answer and its error answers in the one error shape", () => {
    const ops = Object.entries(doc.paths).flatMap(([path, o]) => Object.entries(o).map(([method, op]) => ({ name: `${method} ${path}`, op })));
    expect(ops.length).toBeGreaterThan(20);
    for (const { name, op } of ops) {
      const statuses = Object.keys(op.responses ?? {});
      expect(
        statuses.some((s) => /^(2..|3..|101)$/.test(s)),
        `${name} has no success answer (2xx, 3xx or 101)`,
      ).toBe(true);
      // A health check's 503 is its own answer (unhealthy), not an error.
      const errors = statuses.filter((s) => /^[45]/.test(s) && !(["get /health", "get /api/messages/queue/health"].includes(name) && s === "503"));
      expect(errors.length, `${name} documents no error answer`).toBeGreaterThan(0);
      for (const status of errors) {
        const schema = JSON.stringify(op.responses?.[status]?.content?.["application/json"]?.schema);
        expect(schema, `${name} ${status}`).toMatch(/#\/components\/schemas\/(Error|CompatError)"/);
      }
    }
    expect(doc.components.schemas.Error).toBeDefined();
  });

  it("describes the rate-limit fields on every answer to a tenant key, and Retry-After on its 429", () => {
    const keyed = Object.entries(doc.paths).flatMap(([path, o]) =>
      Object.entries(o)
        .filter(([, op]) => op.responses?.["429"])
        .map(([method, op]) => ({ name: `${method} ${path}`, op })),
    );
    expect(keyed.length).toBeGreaterThan(20);
    for (const { name, op } of keyed) {
      expect(Object.keys(op.responses?.["429"]?.headers ?? {}), name).toEqual(expect.arrayContaining(["RateLimit", "RateLimit-Policy", "Retry-After"]));
      const success = Object.entries(op.responses ?? {}).find(([s]) => /^2/.test(s));
      if (success) expect(Object.keys(success[1].headers ?? {}), `${name} ${success[0]}`).toEqual(expect.arrayContaining(["RateLimit", "RateLimit-Policy"]));
    }
    expect(Object.keys(doc.components.headers ?? {})).toEqual(expect.arrayContaining(["RateLimit", "RateLimitPolicy", "RetryAfter"]));
  });
});

describe("GET /docs", () => {
  it("serves the reference page and its assets from the Worker, with no external address", async () => {
    const page = await api("/docs");
    expect(page.status).toBe(200);
    const html = await page.text();
    const sources = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(sources.length).toBe(3);
    for (const source of sources) {
      expect(source.startsWith("/")).toBe(true);
      const asset = await api(source);
      expect(asset.status, source).toBe(200);
      expect((await asset.text()).length, source).toBeGreaterThan(50);
    }
    const bundle = await api("/docs/swagger-ui-bundle.js");
    expect(bundle.headers.get("content-type")).toContain("javascript");
    expect((await bundle.text()).includes("SwaggerUIBundle")).toBe(true);
  });
});
