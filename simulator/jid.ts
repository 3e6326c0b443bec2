// Recipient addressing as Evolution's createJid does it, and the
// url/base64 tests its controllers apply to media (class-validator isURL / isBase64).

export type Recipient = {
  /** The chat JID the message goes to: `…@s.whatsapp.net`, `…@g.us`, `…@lid`, `…@broadcast`. */
  jid: string;
  /** What the simulator records and matches faults on: the digits for a phone number, else the JID as sent. */
  number: string;
  isGroup: boolean;
};

const passThrough = ["@g.us", "@s.whatsapp.net", "@lid", "@broadcast"];

export function recipient(raw: string): Recipient {
  const trimmed = raw.trim();
  if (passThrough.some((suffix) => trimmed.includes(suffix))) {
    const jid = trimmed.replace(/:\d+(?=@)/, "");
    return { jid, number: jid, isGroup: jid.endsWith("@g.us") };
  }
  const stripped =
    trimmed
      .replace(/[\s+()]/g, "")
      .split(":")[0]
      ?.split("@")[0] ?? "";
  // Old-style group ids: `<creator>-<timestamp>`.
  if (stripped.includes("-") && stripped.length >= 24) {
    const id = stripped.replace(/[^\d-]/g, "");
    return { jid: `${id}@g.us`, number: id, isGroup: true };
  }
  const digits = stripped.replace(/\D/g, "");
  if (digits.length >= 18) return { jid: `${digits}@g.us`, number: digits, isGroup: true };
  return { jid: `${formatBRNumber(digits)}@s.whatsapp.net`, number: digits, isGroup: false };
}

/** The phone-number part of a JID or number, for matching lists like notOnWhatsApp. */
export function digitsOf(value: string): string {
  return value.split("@")[0]?.replace(/\D/g, "") ?? "";
}

// Brazil: mobile numbers registered before the 9th digit keep their 8-digit JID outside
// area codes 11–30 (Evolution's formatBRNumber).
function formatBRNumber(digits: string): string {
  const match = /^(\d{2})(\d{2})\d(\d{8})$/.exec(digits);
  if (match?.[1] !== "55") return digits;
  const [, country, ddd, subscriber] = match;
  if (Number(subscriber?.[0]) < 7 || Number(ddd) < 31) return digits;
  return `${country}${ddd}${subscriber}`;
}

// validator.js isURL defaults: http/https/ftp, protocol optional, a TLD required (so no
// `localhost`), IPv4 hosts allowed.
export function isURL(value: unknown): value is string {
  if (typeof value !== "string" || value.length === 0 || /\s/.test(value)) return false;
  const withProtocol = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(withProtocol);
  } catch {
    return false;
  }
  if (!["http:", "https:", "ftp:"].includes(url.protocol)) return false;
  const host = url.hostname;
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) return true;
  return /^([a-z0-9-]+\.)+[a-z\u00a1-\uffff]{2,}$/i.test(host);
}

// Raw base64 only: a `data:` prefix makes Evolution reject the media.
export function isBase64(value: unknown): value is string {
  if (typeof value !== "string" || value.length === 0 || value.length % 4 !== 0) return false;
  return /^[A-Za-z0-9+/]+={0,2}$/.test(value);
}

/** Decoded size of a base64 string, without decoding it. */
export function base64Bytes(value: string): number {
  const padding = value.endsWith("==") ? 2 : value.endsWith("=") ? 1 : 0;
  return (value.length / 4) * 3 - padding;
}
