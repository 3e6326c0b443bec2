// Identifiers in the formats Evolution and Baileys produce.

function randomHex(chars: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(Math.ceil(chars / 2)));
  return [...bytes]
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("")
    .slice(0, chars)
    .toUpperCase();
}

/** Ids of API-sent messages start with 3EB0, which is why Evolution reports `source: "web"`. */
export function newWebMessageId(taken: Set<string>): string {
  for (;;) {
    const id = `3EB0${randomHex(18)}`;
    if (!taken.has(id)) {
      taken.add(id);
      return id;
    }
  }
}

/** Android devices use 32 upper-case hex chars; iOS ids start with 3A and are 20 long. */
export const androidMessageId = () => randomHex(32);
export const iosMessageId = () => `3A${randomHex(18)}`;

const base36 = "0123456789abcdefghijklmnopqrstuvwxyz";

/** Evolution's database row ids (Prisma cuid): `c` + 24 lower-case base-36 chars. */
export function cuid(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return `c${[...bytes].map((b) => base36[b % 36]).join("")}`;
}

/** Protobuf bytes as Evolution serialises them to JSON: `{"0":n,"1":n,…}`. */
export function byteObject(length: number): Record<string, number> {
  return Object.fromEntries([...crypto.getRandomValues(new Uint8Array(length))].map((b, i) => [String(i), b]));
}

/** A protobuf int64 (Long) as it appears in JSON. */
export const long = (low: number, unsigned: boolean) => ({ low, high: 0, unsigned });
