// Send bodies checked the way Evolution checks them: its JSON schemas first
// (src/validate/message.schema.ts, errors as a nested array), then the controllers' own rules
// (a flat array of strings). Messages follow `jsonschema`'s `stack` with "instance." removed,
// or the property's `description` when the schema gives one.
import { z } from "zod";
import { isBase64, isURL } from "./jid.ts";

export type SendRoute = "sendText" | "sendMedia" | "sendWhatsAppAudio";
export const sendRoutes: readonly SendRoute[] = ["sendText", "sendMedia", "sendWhatsAppAudio"];

const quoted = z.object({
  key: z.object({
    id: z.string().min(1),
    remoteJid: z.string().optional(),
    fromMe: z.boolean().optional(),
    participant: z.string().optional(),
  }),
  message: z.record(z.string(), z.unknown()).optional(),
});

const metadata = {
  number: z.string(),
  delay: z.number().int().optional(),
  quoted: quoted.optional(),
  mentionsEveryOne: z.boolean().optional(),
  everyOne: z.boolean().optional(),
  mentioned: z.array(z.string().regex(/^\d+/)).min(1).optional(),
};

export const mediaTypes = ["image", "document", "video", "audio"] as const;

const schemas = {
  sendText: z.object({ ...metadata, text: z.string(), linkPreview: z.boolean().optional() }),
  sendMedia: z.object({
    ...metadata,
    mediatype: z.enum(mediaTypes),
    mimetype: z.string().optional(),
    media: z.string().optional(),
    fileName: z.string().optional(),
    caption: z.string().optional(),
  }),
  sendWhatsAppAudio: z.object({
    ...metadata,
    audio: z.string().optional(),
    // Read by the DTO, not in the schema: a wrong type is ignored, not rejected.
    encoding: z.boolean().optional().catch(undefined),
  }),
};

export type TextRequest = z.infer<typeof schemas.sendText>;
export type MediaRequest = z.infer<typeof schemas.sendMedia>;
export type AudioRequest = z.infer<typeof schemas.sendWhatsAppAudio>;
export type SendRequest =
  | { route: "sendText"; body: TextRequest }
  | { route: "sendMedia"; body: MediaRequest }
  | { route: "sendWhatsAppAudio"; body: AudioRequest };

const required: Record<SendRoute, string[]> = {
  sendText: ["number", "text"],
  sendMedia: ["number", "mediatype"],
  sendWhatsAppAudio: ["number"],
};

// Schema `description`s replace jsonschema's own message (hence "Invalid format" for a bad number).
const descriptions: Record<string, string> = {
  number: "Invalid format",
  delay: "Enter a value in milliseconds",
  "mentioned.*": '"mentioned" must be an array of numeric strings',
  "quoted.key.id": 'The "id" cannot be empty',
};

const jsonTypes: Record<string, string> = { int: "integer", record: "object" };

export type Validation = { ok: true; request: SendRequest } | { ok: false; message: unknown[] };

export function validateSend(route: SendRoute, body: unknown): Validation {
  const record = z.record(z.string(), z.unknown()).safeParse(body);
  if (!record.success) return { ok: false, message: [["instance is not of a type(s) object"]] };
  const errors: string[] = [];
  const parsed = schemas[route].safeParse(record.data);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const path = issue.path.map(String);
      // A missing required top-level property is reported once, below, in schema order.
      if (path.length === 1 && record.data[path[0] ?? ""] === undefined) continue;
      errors.push(describeIssue(issue, path, record.data));
    }
  }
  for (const property of required[route]) {
    if (record.data[property] === undefined) errors.push(`instance requires property "${property}"`);
  }
  if (errors.length > 0 || !parsed.success) return { ok: false, message: [errors] };
  return { ok: true, request: tagged(route, parsed.data) };
}

function tagged(route: SendRoute, data: unknown): SendRequest {
  // Re-parsing with the route's own schema narrows the union without a cast.
  if (route === "sendText") return { route, body: schemas.sendText.parse(data) };
  if (route === "sendMedia") return { route, body: schemas.sendMedia.parse(data) };
  return { route, body: schemas.sendWhatsAppAudio.parse(data) };
}

function describeIssue(issue: z.core.$ZodIssue, path: string[], body: Record<string, unknown>): string {
  const dotted = path.join(".");
  const wildcard = path.map((p) => (/^\d+$/.test(p) ? "*" : p)).join(".");
  const described = descriptions[dotted] ?? descriptions[wildcard] ?? descriptions[path[0] ?? ""];
  if (issue.code === "invalid_type" && valueAt(body, path) === undefined) {
    const parent = path.slice(0, -1).join(".") || "instance";
    return `${parent} requires property "${path.at(-1) ?? ""}"`;
  }
  if (described) return described;
  if (issue.code === "invalid_type") return `${dotted} is not of a type(s) ${jsonTypes[issue.expected] ?? issue.expected}`;
  if (issue.code === "invalid_value") return `${dotted} is not one of enum values: ${issue.values.map(String).join(",")}`;
  if (issue.code === "too_small") return `${dotted} does not meet minimum length of ${String(issue.minimum)}`;
  return `${dotted} ${issue.message}`;
}

function valueAt(body: unknown, path: string[]): unknown {
  let value: unknown = body;
  for (const key of path) {
    const step = z.record(z.string(), z.unknown()).or(z.array(z.unknown())).safeParse(value);
    if (!step.success) return undefined;
    value = Array.isArray(step.data) ? step.data[Number(key)] : step.data[key];
  }
  return value;
}

/** The controllers' checks after the schema passed; a message means 400 `[message]`. */
export function businessRule(request: SendRequest): string | undefined {
  if (request.route === "sendText") return request.body.text.trim() === "" ? "Text is required" : undefined;
  if (request.route === "sendMedia") {
    const { media, fileName, mediatype } = request.body;
    if (isBase64(media) && !fileName && mediatype === "document") return "For base64 the file name must be informed.";
    return isURL(media) || isBase64(media) ? undefined : "Owned media must be a url or base64";
  }
  const { audio } = request.body;
  return isURL(audio) || isBase64(audio) ? undefined : "Owned media must be a url or base64";
}
