// The console's static files come from Workers static assets (through the ASSETS binding, with the
// console's security headers); every API path still reaches Hono.
import { describe, expect, it } from "vitest";
import { api } from "./helpers.ts";

const get = (path: string) => api(path, { redirect: "manual" });

describe("/console (static assets)", () => {
  it("serves the page, its modules and stylesheet with a strict CSP, and leaves the API to the Worker", async () => {
    const page = await get("/console/");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    const html = await page.text();
    const sources = [...html.matchAll(/(?:src|href)="([^"#]+)"/g)].map((m) => m[1]!).filter((s) => s !== "data:,");
    expect(sources.sort()).toEqual(["console.css", "console.js"]);
    expect(html).toContain('<script type="module" src="console.js"></script>');
    for (const source of sources) {
      const asset = await get(`/console/${source}`);
      expect(asset.status, source).toBe(200);
      expect((await asset.text()).length).toBeGreaterThan(500);
    }
    // console.js is the entry of native ES modules: every module it reaches is served from here as
    // JavaScript (a browser refuses a module of another type under nosniff) and imports only relative paths.
    const modules = new Set<string>();
    const pending = ["console.js"];
    while (pending.length > 0) {
      const file = pending.pop()!;
      if (modules.has(file)) continue;
      modules.add(file);
      const asset = await get(`/console/${file}`);
      expect(asset.status, file).toBe(200);
      expect(asset.headers.get("content-type"), file).toMatch(/javascript/);
      expect(asset.headers.get("x-content-type-options"), file).toBe("nosniff");
      const code = await asset.text();
      expect(code.length, file).toBeGreaterThan(500);
      for (const [, specifier] of code.matchAll(/^import [^;]*? from "([^"]+)";$/gm)) {
        expect(specifier, `${file} imports ${specifier}`).toMatch(/^\.\.?\//);
        pending.push(new URL(specifier!, `https://x/${file}`).pathname.slice(1));
      }
    }
    expect([...modules]).toEqual(expect.arrayContaining(["console.js", "api.js", "stream.js", "router.js", "replay-table.js", "pages/inbox.js"]));
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
