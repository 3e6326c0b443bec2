// After a runtime restart: automation lanes that hold waiting messages run again (a restarted local
// runtime fires an object's alarm only once something touches the object).
import { sql } from "drizzle-orm";
import { database } from "../db/client.ts";
import { automationLane } from "./config.ts";

const MAX_LANES = 100;

export async function wakeAutomationLanes(env: Env): Promise<number> {
  const lanes = await database(env.DB).all<{ lane_key: string }>(
    sql`SELECT DISTINCT lane_key FROM automation_deliveries WHERE status = 'pending' LIMIT ${MAX_LANES}`,
  );
  await Promise.all(lanes.map((l) => automationLane(env, l.lane_key).kick()));
  return lanes.length;
}
