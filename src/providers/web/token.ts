// Visitor tokens: a JWT (HS256, hono/jwt) signed with the WEB_CHAT_SECRET, naming the tenant, the
// instance and the visitor, with an expiry. Checking one needs no D1 read; the tenant's API key never
// reaches the browser.
import { sign, verify } from "hono/jwt";
import { z } from "zod";
import { visitorIdFormat } from "./limits.ts";

const AUDIENCE = "mensageiro-web-chat";

export type Visitor = { tenantId: string; instanceId: string; instanceName: string; visitorId: string; name: string | null };
/** A checked token's visitor, with when it was minted and when it expires (epoch ms). */
export type VisitorToken = Visitor & { issuedAt: number; expiresAt: number };

const claims = z.object({
  aud: z.literal(AUDIENCE),
  sub: z.string().regex(visitorIdFormat),
  ten: z.string().min(1),
  ins: z.string().min(1),
  inn: z.string().min(1),
  nam: z.string().nullable().optional(),
  exp: z.number(),
  iat: z.number().optional(),
  // Minted at, in ms: a revocation cuts every token minted up to its own millisecond.
  iam: z.number().optional(),
});

export async function mintVisitorToken(secret: string, v: Visitor, expiresAt: number, now = Date.now()): Promise<string> {
  const payload = {
    aud: AUDIENCE,
    sub: v.visitorId,
    ten: v.tenantId,
    ins: v.instanceId,
    inn: v.instanceName,
    nam: v.name,
    iat: Math.floor(now / 1000),
    iam: now,
    exp: Math.floor(expiresAt / 1000),
  };
  return sign(payload, secret, "HS256");
}

/** The visitor a token names, or undefined when it is malformed, forged or expired. */
export async function checkVisitorToken(secret: string, token: string): Promise<VisitorToken | undefined> {
  try {
    const payload = claims.safeParse(await verify(token, secret, { alg: "HS256", aud: AUDIENCE }));
    if (!payload.success) return undefined;
    const p = payload.data;
    return {
      tenantId: p.ten,
      instanceId: p.ins,
      instanceName: p.inn,
      visitorId: p.sub,
      name: p.nam ?? null,
      issuedAt: p.iam ?? (p.iat ?? 0) * 1000,
      expiresAt: p.exp * 1000,
    };
  } catch {
    return undefined;
  }
}
