// Real-browser tests: Debian's chromium, headless, driven by playwright-core; screenshots at phone
// and desktop widths into a temporary folder, or into docs/ when asked (so a test run does not
// rewrite tracked images).
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { expect } from "vitest";
import { ROOT } from "../../tools/harness/gateway.ts";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const widths = { phone: { width: 360, height: 780 }, desktop: { width: 1280, height: 860 } } as const;

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`chromium not found at ${CHROMIUM} (apt-get install chromium)`);
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
}

/** docs/<folder> when the env var is set, else a fresh temporary folder. */
export function screenshotFolder(envVar: string, folder: string): string {
  const dir = process.env[envVar] ? path.join(ROOT, "docs", folder) : mkdtempSync(path.join(tmpdir(), `${folder.replace(/\W/g, "-")}-shots-`));
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** What a page did that it must not: requests to another host, uncaught errors, CSP violations. */
export type PageWatch = { page: Page; foreign: string[]; pageErrors: string[]; cspViolations: string[] };

/** A new page at desktop width on `gatewayUrl`'s gateway, watched for what it must not do. */
export async function openPage(browser: Browser, gatewayUrl: string): Promise<PageWatch> {
  const page = await browser.newPage({ viewport: widths.desktop });
  page.setDefaultTimeout(15_000);
  const watch: PageWatch = { page, foreign: [], pageErrors: [], cspViolations: [] };
  page.on("pageerror", (e) => {
    console.error("page error:", e.message);
    watch.pageErrors.push(e.message);
  });
  page.on("console", (m) => {
    if (/content security policy/i.test(m.text())) watch.cspViolations.push(m.text());
  });
  const host = new URL(gatewayUrl).host;
  page.on("request", (r) => {
    const url = new URL(r.url());
    if (url.protocol !== "data:" && url.host !== host) watch.foreign.push(r.url());
  });
  return watch;
}

/** Signs in to the console shown on `page` with `apiKey`, from the keyboard; resolves when the console's bar shows. */
export async function signIn(page: Page, apiKey: string): Promise<void> {
  await page.fill("#api-key", apiKey);
  await page.press("#api-key", "Enter");
  await page.waitForSelector("#bar:not([hidden])");
}

/**
 * The page as it is now, at both widths (`<name>-phone.png`, `<name>-desktop.png`); back to desktop
 * after. With `fitsPhone`, nothing may be wider than the phone's screen.
 */
export async function shoot(page: Page, dir: string, name: string, { fitsPhone = false } = {}): Promise<void> {
  for (const [kind, size] of Object.entries(widths)) {
    await page.setViewportSize(size);
    if (fitsPhone && kind === "phone")
      expect(await page.evaluate<number>("document.documentElement.scrollWidth"), `${name} at ${size.width} px`).toBeLessThanOrEqual(size.width);
    await page.screenshot({ path: path.join(dir, `${name}-${kind}.png`), fullPage: true });
  }
  await page.setViewportSize(widths.desktop);
}
