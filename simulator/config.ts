// Simulator settings, instances and scripted faults, with the zod schemas the control API
// and the env reader parse them with.
import { z } from "zod";

export const connectionStates = ["open", "connecting", "close"] as const;
export type ConnectionState = (typeof connectionStates)[number];

export const instanceSettings = z.object({
  apikey: z.string().min(1),
  webhookUrl: z.url().nullable().optional(),
  /** Evolution's webhook `byEvents`: the event name is appended to the URL as a path. */
  byEvents: z.boolean().optional(),
  /** Sent on every webhook POST, like the instance webhook's `headers`. */
  webhookHeaders: z.record(z.string(), z.string()).optional(),
  state: z.enum(connectionStates).optional(),
  /** The instance owner's number: the webhooks' `sender`. */
  ownerNumber: z
    .string()
    .regex(/^\d{8,15}$/)
    .optional(),
  profileName: z.string().optional(),
});
export type InstanceSettings = z.infer<typeof instanceSettings>;
export type InstanceSeed = InstanceSettings & { name: string };

export const configPatch = z.strictObject({
  latencyMs: z.number().int().min(0).optional(),
  latencyJitterMs: z.number().int().min(0).optional(),
  failureRate: z.number().min(0).max(1).optional(),
  notOnWhatsApp: z.array(z.string()).optional(),
  honourDelay: z.boolean().optional(),
  sendMessageDelayMs: z.number().int().optional(),
  deliveredDelayMs: z.number().int().optional(),
  readDelayMs: z.number().int().optional(),
  webhookMaxAttempts: z.number().int().min(1).max(20).optional(),
  webhookRetryDelayMs: z.number().int().min(0).optional(),
  webhookTimeoutMs: z.number().int().min(1).optional(),
  serverUrl: z.string().optional(),
  globalApiKey: z.string().min(1).nullable().optional(),
  qrRefreshMs: z.number().int().min(10).optional(),
  qrLimit: z.number().int().min(1).optional(),
});

export type SimulatorConfig = {
  /** Time each send takes before answering (the Baileys round trip). */
  latencyMs: number;
  /** Extra random 0..latencyJitterMs per send. */
  latencyJitterMs: number;
  /** Share of sends (0..1) that fail with 500 "Connection Closed". */
  failureRate: number;
  /** Numbers the WhatsApp pre-check reports as `exists:false`. */
  notOnWhatsApp: string[];
  /** Wait the request's `delay` like Evolution does (off by default to keep tests fast). */
  honourDelay: boolean;
  /** Webhook delays after a send; below 0 disables that webhook. */
  sendMessageDelayMs: number;
  deliveredDelayMs: number;
  readDelayMs: number;
  /** Webhook delivery: attempts, first backoff (doubling, capped at 30× this), per-attempt timeout. */
  webhookMaxAttempts: number;
  webhookRetryDelayMs: number;
  webhookTimeoutMs: number;
  /** The envelopes' `server_url`. */
  serverUrl: string;
  /** Evolution's AUTHENTICATION_API_KEY: accepted for every instance besides its own token. */
  globalApiKey: string | null;
  /** Pairing: a new QR code (`qrcode.updated`) every qrRefreshMs, at most qrLimit codes (Evolution's QRCODE_LIMIT). */
  qrRefreshMs: number;
  qrLimit: number;
  /** Instances present from the start. */
  instances: InstanceSeed[];
};

export const defaultConfig = (): SimulatorConfig => ({
  latencyMs: 0,
  latencyJitterMs: 0,
  failureRate: 0,
  notOnWhatsApp: [],
  honourDelay: false,
  sendMessageDelayMs: 50,
  deliveredDelayMs: 300,
  readDelayMs: 800,
  webhookMaxAttempts: 5,
  webhookRetryDelayMs: 250,
  webhookTimeoutMs: 10_000,
  serverUrl: "http://evolution.simulator",
  globalApiKey: null,
  qrRefreshMs: 20_000,
  qrLimit: 30,
  instances: [],
});

export const faultInput = z.strictObject({
  instance: z.string().optional(),
  /** Matched against the normalised number (digits) or the JID as sent. */
  number: z.string().optional(),
  route: z.enum(["sendText", "sendMedia", "sendWhatsAppAudio", "sendPresence", "findMessages"]).optional(),
  /** HTTP status to answer; 0 drops the connection (see server.ts). */
  status: z
    .number()
    .int()
    .refine((s) => s === 0 || (s >= 200 && s <= 599), "0 or an HTTP status"),
  /** Response body; a realistic Evolution error envelope for the status when omitted. */
  body: z.unknown().optional(),
  /** Answer this much later. With a 2xx status on a send: a hung send that still completes (the
   *  message goes out and is stored when the answer is given, after the caller may have given up). */
  delayMs: z.number().int().min(0).max(300_000).optional(),
  /** Response headers, e.g. `{"retry-after": "5"}` on a 503. */
  headers: z.record(z.string(), z.string()).optional(),
  /** With an error status on a send: the message goes out first (stored, webhooks emitted), then
   *  the error is answered, as Evolution does when its own write fails after Baileys relayed. */
  relay: z.boolean().optional(),
  times: z.number().int().min(1).default(1),
});
export type Fault = z.infer<typeof faultInput>;
export const faultsInput = z.union([faultInput, z.array(faultInput)]);
