// The console's static files come from Workers static assets (through the ASSETS binding, with the
// console's security headers); every API path still reaches Hono.
import { describe, expect, it } from "vitest";
import { api } from "./helpers.ts";

const get = (path: string) => api(path, { redirect: "manual" });

describe("/console (static assets)", () => {
  it("serves the page, its script and stylesheet with a strict CSP, and leaves the API to the Worker", async () => {
    const page = await get("/console/");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    const html = await page.text();
    const sources = [...html.matchAll(/(?:src|href)="([^"#]+)"/g)].map((m) => m[1]!).filter((s) => s !== "data:,");
    expect(sources.sort()).toEqual(["console.css", "console.js"]);
    for (const source of sources) {
      const asset = await get(`/console/${source}`);
      expect(asset.status, source).toBe(200);
      expect((await asset.text()).length).toBeGreaterThan(500);
    }
    const bare = await get("/console");
    expect(bare.status).toBe(308);
    expect(bare.headers.get("location")).toBe("/console/");
    const health = await get("/health");
    expect(health.status).toBe(200);
    // The console's headers stay on the console.
    expect(health.headers.get("content-security-policy")).toBeNull();
    const unauth = await get("/v1/stats");
    expect(unauth.status).toBe(401);
    expect((await unauth.json()) as unknown).toMatchObject({ error: { code: "unauthorized" } });
    expect((await get("/console/nope.js")).status).toBe(404);
  });
});
