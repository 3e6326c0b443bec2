// The callback_deliveries table: one row per event and callback URL, from its hand-out (pending)
// to delivered or failed.
import { sql } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "../client.ts";

const statusCount = z.object({ status: z.string(), n: z.number() });

/** How many deliveries stand in each status (all tenants: the metrics). */
export async function countsByStatus(db: Db): Promise<z.infer<typeof statusCount>[]> {
  return z.array(statusCount).parse(await db.all(sql`SELECT status, COUNT(*) AS n FROM callback_deliveries GROUP BY status`));
}
