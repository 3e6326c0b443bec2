// List paging: opaque cursors (the sort key of the last row, a number and a tie-breaking id,
// base64url JSON) and the page a route answers from a read of limit + 1 rows.
import { z } from "zod";

const position = z.tuple([z.number().int(), z.string().min(1).max(200)]);
export type Position = z.infer<typeof position>;

export function encodeCursor(at: number, id: string): string {
  return btoa(JSON.stringify([at, id]))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

function decode(text: string): Position | undefined {
  try {
    const parsed = position.safeParse(JSON.parse(atob(text.replace(/-/g, "+").replace(/_/g, "/"))));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** A query parameter holding a cursor from encodeCursor; anything else is a 400. */
export const cursorParam = z
  .string()
  .max(400)
  .transform((text, ctx) => {
    const at = decode(text);
    if (!at) {
      ctx.addIssue({ code: "custom", message: "Not a cursor from this API." });
      return z.NEVER;
    }
    return at;
  });

/**
 * A list answer from a read of `limit + 1` rows: the first `limit` rows as `view` shows them, and
 * `cursorOf` the last of them when the extra row says there is a next page.
 */
export function listPage<Row, Item>(
  rows: Row[],
  limit: number,
  view: (row: Row) => Item,
  cursorOf: (last: Row) => string,
): { data: Item[]; nextCursor: string | null } {
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return { data: page.map(view), nextCursor: rows.length > limit && last ? cursorOf(last) : null };
}
