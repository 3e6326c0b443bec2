// Body of a `sends` queue message: what a lane needs to place one message in its order.
// The message itself is read from D1 when it is sent, so the queue body stays small.
import { z } from "zod";

export const sendJob = z.object({
  messageId: z.string().min(1),
  laneKey: z.string().min(1),
  instanceId: z.string().min(1),
  priority: z.int(),
  readyAt: z.number(),
  createdAt: z.number(),
});

export type SendJob = z.infer<typeof sendJob>;
