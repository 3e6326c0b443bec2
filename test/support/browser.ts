// Real-browser tests: Debian's chromium, headless, driven by playwright-core; screenshots at phone
// and desktop widths into a temporary folder, or into docs/ when asked (so a test run does not
// rewrite tracked images).
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { ROOT } from "./gateway.ts";

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

/** The page as it is now, at both widths (`<name>-phone.png`, `<name>-desktop.png`); back to desktop after. */
export async function shoot(page: Page, dir: string, name: string): Promise<void> {
  for (const [kind, size] of Object.entries(widths)) {
    await page.setViewportSize(size);
    await page.screenshot({ path: path.join(dir, `${name}-${kind}.png`), fullPage: true });
  }
  await page.setViewportSize(widths.desktop);
}
