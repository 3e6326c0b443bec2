// Standard Webhooks v1 signing, shared by tenant callbacks and inbound automation: receivers verify
// with any Standard Webhooks library. Signed content is `${id}.${timestamp}.${body}` (HMAC-SHA256);
// secrets are `whsec_` + base64 of 32 random bytes, the prefix not being part of the key.

const PREFIX = "whsec_";

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** A new endpoint secret, `whsec_<base64 of 32 random bytes>`. Shown once; stored as is. */
export function newWebhookSecret(): string {
  return PREFIX + toBase64(crypto.getRandomValues(new Uint8Array(32)));
}

/** True when `secret` has the `whsec_<base64>` form with a key of 24 to 64 bytes. */
export function isWebhookSecret(secret: string): boolean {
  if (!secret.startsWith(PREFIX)) return false;
  try {
    const key = fromBase64(secret.slice(PREFIX.length));
    return key.length >= 24 && key.length <= 64;
  } catch {
    return false;
  }
}

async function signOne(secret: string, content: Uint8Array): Promise<string> {
  const key = await crypto.subtle.importKey("raw", fromBase64(secret.slice(PREFIX.length)), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return `v1,${toBase64(new Uint8Array(await crypto.subtle.sign("HMAC", key, content)))}`;
}

export type SignedHeaders = { "webhook-id": string; "webhook-timestamp": string; "webhook-signature": string };

/** The three Standard Webhooks headers for one attempt. Several secrets (a rotation's overlap)
 *  give several space-separated signatures; a receiver accepts any that matches. */
export async function signWebhook(opts: { id: string; body: string; secrets: readonly string[]; now?: number }): Promise<SignedHeaders> {
  const timestamp = String(Math.floor((opts.now ?? Date.now()) / 1000));
  const content = new TextEncoder().encode(`${opts.id}.${timestamp}.${opts.body}`);
  const signatures = await Promise.all(opts.secrets.map((s) => signOne(s, content)));
  return { "webhook-id": opts.id, "webhook-timestamp": timestamp, "webhook-signature": signatures.join(" ") };
}
