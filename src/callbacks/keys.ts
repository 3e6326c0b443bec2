// Which secrets sign a tenant's callbacks at a given time.
// - The current secret, and the one before the last rotation until its overlap ends (24 h).
// - A tenant created before Standard Webhooks holds a plain token. Its Standard Webhooks secret is
//   `whsec_` + base64 of that token's bytes: the HMAC key does not change, so the tenant can verify
//   the new headers with the secret it already has. While such a token still signs (current, or
//   previous within the overlap), the old X-Mensageiro-Signature header is sent as well, so
//   receivers written for it keep working until the tenant rotates (docs/callbacks.md).
export const ROTATION_OVERLAP_MS = 24 * 3600_000;

export type TenantSecrets = { current: string; previous: string | null; previousUntil: number | null };
export type SigningPlan = { secrets: string[]; legacy: string | null };

const isLegacy = (secret: string) => !secret.startsWith("whsec_");

function base64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** The `whsec_` form of a stored secret (a pre-Standard-Webhooks token keeps its bytes as the key). */
export function asWebhookSecret(secret: string): string {
  return isLegacy(secret) ? `whsec_${base64(new TextEncoder().encode(secret))}` : secret;
}

export function signingPlan(s: TenantSecrets, now: number): SigningPlan {
  const active = [s.current];
  if (s.previous && (s.previousUntil ?? 0) > now) active.push(s.previous);
  return { secrets: active.map(asWebhookSecret), legacy: active.find(isLegacy) ?? null };
}

/** The pre-Standard-Webhooks header: `sha256=<hex HMAC-SHA256 of the body>` keyed by the token's bytes. */
export async function legacySignature(secret: string, body: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(body));
  return `sha256=${[...new Uint8Array(mac)].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}
