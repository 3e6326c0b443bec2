// What mensageiro signs, the Standard Webhooks reference library verifies (as a tenant's receiver would).
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { isWebhookSecret, newWebhookSecret, signWebhook } from "../../src/signing/standard-webhooks.ts";

describe("Standard Webhooks signing", () => {
  it("is verified by the standardwebhooks package, with each secret of a rotation's overlap", async () => {
    const oldSecret = newWebhookSecret();
    const newSecret = newWebhookSecret();
    expect(isWebhookSecret(oldSecret)).toBe(true);
    const body = JSON.stringify({ type: "message.status", data: { text: "olá, ação ✓" } });
    const headers = await signWebhook({ id: "evt_1", body, secrets: [newSecret, oldSecret] });
    expect(headers["webhook-signature"].split(" ")).toHaveLength(2);
    expect(new Webhook(newSecret).verify(body, headers)).toEqual(JSON.parse(body));
    expect(new Webhook(oldSecret).verify(body, headers)).toEqual(JSON.parse(body));
  });

  it("is refused for another secret, a changed body, or a stale timestamp", async () => {
    const secret = newWebhookSecret();
    const body = '{"a":1}';
    const headers = await signWebhook({ id: "evt_2", body, secrets: [secret] });
    expect(() => new Webhook(newWebhookSecret()).verify(body, headers)).toThrow();
    expect(() => new Webhook(secret).verify('{"a":2}', headers)).toThrow();
    const stale = await signWebhook({ id: "evt_2", body, secrets: [secret], now: Date.now() - 10 * 60_000 });
    expect(() => new Webhook(secret).verify(body, stale)).toThrow();
  });

  it("knows a whsec_ secret from other strings", () => {
    expect(isWebhookSecret("plain-secret")).toBe(false);
    expect(isWebhookSecret("whsec_c2hvcnQ=")).toBe(false);
  });
});
