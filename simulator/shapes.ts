// Payloads in Evolution's shapes: the send response (`messageRaw`, also the `send.message`
// data), receipts, inbound messages, connection events, error envelopes and webhook envelopes.
import { androidMessageId, byteObject, cuid, iosMessageId, long } from "./ids.ts";
import { base64Bytes, isBase64, recipient, type Recipient } from "./jid.ts";
import type { AudioRequest, MediaRequest, TextRequest } from "./requests.ts";
import type { Instance } from "./instance.ts";

export type MessageRaw = {
  key: { remoteJid: string; fromMe: true; id: string };
  pushName: string;
  status: "PENDING";
  message: Record<string, unknown>;
  contextInfo?: Record<string, unknown>;
  messageType: string;
  messageTimestamp: number;
  instanceId: string;
  /** Baileys' guess from the id's shape: "web" for API sends (3EB0…), a phone's for typed ones. */
  source: "web" | "ios" | "android";
};

export type ReceiptStatus = "SERVER_ACK" | "DELIVERY_ACK" | "READ" | "PLAYED" | "ERROR";

export type Envelope = {
  event: string;
  instance: string;
  data: unknown;
  destination: string | undefined;
  date_time: string;
  sender: string;
  server_url: string;
  apikey: string;
};

const unixSeconds = () => Math.floor(Date.now() / 1000);

// ---- error envelopes (as Evolution answers them) ----

const reasons: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  408: "Request Timeout",
  422: "Unprocessable Entity",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

export const reasonPhrase = (status: number) => reasons[status] ?? (status >= 500 ? "Internal Server Error" : "Error");

export const errorBody = (status: number, message: unknown) => ({ status, error: reasonPhrase(status), response: { message } });

export const instanceNotFound = (name: string) => errorBody(404, [`The "${name}" instance does not exist`]);
export const unauthorized = () => errorBody(401, "Unauthorized");
export const connectionClosed = () => errorBody(500, "Connection Closed");
export const notOnWhatsApp = (to: Recipient) => errorBody(400, [{ jid: to.jid, exists: false, number: to.number }]);

/** What a scripted fault answers when it gives no body: a typical Evolution error for that status. */
export function defaultFaultBody(status: number): unknown {
  if (status === 400) return errorBody(400, ["SessionError: No sessions"]);
  if (status === 401) return unauthorized();
  if (status === 429) return errorBody(429, ["rate-overlimit"]);
  if (status === 500) return connectionClosed();
  return errorBody(status, reasonPhrase(status));
}

// ---- the send response ----

type Sender = { instance: Instance; to: Recipient; keyId: string; quotedFrom: (id: string) => MessageRaw | undefined };

function base(s: Sender, message: Record<string, unknown>, messageType: string, contextInfo?: Record<string, unknown>): MessageRaw {
  return {
    key: { remoteJid: s.to.jid, fromMe: true, id: s.keyId },
    pushName: "Você",
    status: "PENDING",
    message,
    ...(contextInfo ? { contextInfo } : {}),
    messageType,
    messageTimestamp: unixSeconds(),
    instanceId: s.instance.instanceId,
    source: "web",
  };
}

type Extras = Pick<TextRequest, "quoted" | "mentioned" | "mentionsEveryOne">;

// Quotes and group mentions travel in contextInfo; 1:1 texts also carry the contextInfo
// Evolution injects itself (ephemeral/disappearing settings).
function contextFor(s: Sender, extras: Extras, injectDirect: boolean): Record<string, unknown> | undefined {
  const context: Record<string, unknown> = {};
  if (extras.quoted) {
    const { key, message } = extras.quoted;
    context.stanzaId = key.id;
    context.participant = key.participant ?? (key.fromMe ? s.instance.wuid : (key.remoteJid ?? s.to.jid));
    const quotedMessage = message ?? s.quotedFrom(key.id)?.message;
    if (quotedMessage) context.quotedMessage = quotedMessage;
  }
  if (s.to.isGroup) {
    if (extras.mentioned) context.mentionedJid = extras.mentioned.map((n) => recipient(n).jid);
    else if (extras.mentionsEveryOne) context.mentionedJid = [];
  } else if (injectDirect) {
    Object.assign(context, {
      mentionedJid: [],
      groupMentions: [],
      ephemeralSettingTimestamp: long(s.instance.createdAt, false),
      disappearingMode: { initiator: 0 },
    });
  }
  return Object.keys(context).length > 0 ? context : undefined;
}

export function textMessage(s: Sender, body: TextRequest): MessageRaw {
  return base(s, { conversation: body.text }, "conversation", contextFor(s, body, true));
}

const mimeByExtension: Record<string, string> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  mp4: "video/mp4",
  "3gp": "video/3gpp",
  mov: "video/quicktime",
  pdf: "application/pdf",
  txt: "text/plain",
  csv: "text/csv",
  zip: "application/zip",
  doc: "application/msword",
  docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  xls: "application/vnd.ms-excel",
  xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  mp3: "audio/mpeg",
  ogg: "audio/ogg",
  opus: "audio/ogg",
  m4a: "audio/mp4",
  aac: "audio/aac",
  wav: "audio/wav",
  amr: "audio/amr",
};

const extensionOf = (name: string | undefined) =>
  name
    ?.split(/[?#]/)[0]
    ?.match(/\.([a-z0-9]+)$/i)?.[1]
    ?.toLowerCase();
const mimeOf = (name: string | undefined) => mimeByExtension[extensionOf(name) ?? ""];

const fallbackMime: Record<MediaRequest["mediatype"], string> = {
  image: "image/png",
  video: "video/mp4",
  document: "application/octet-stream",
  audio: "audio/mpeg",
};

// Upload results: a fake CDN location plus the hashes/keys WhatsApp media carries.
function upload(kind: string, media: string) {
  const path = `/o1/v/t62.${kind}-24/f2/m23${Math.floor(Math.random() * 10)}/AQSIM${cuid().slice(1, 17)}?ccb=9-4&oh=01_Q5Aa1wSIM&oe=6921F4BB&_nc_sid=e6ed6c`;
  return {
    url: `https://mmg.whatsapp.net${path}&mms3=true`,
    directPath: path,
    fileLength: long(isBase64(media) ? base64Bytes(media) : 20_000 + Math.floor(Math.random() * 280_000), true),
    fileSha256: byteObject(32),
    fileEncSha256: byteObject(32),
    mediaKey: byteObject(32),
    mediaKeyTimestamp: long(unixSeconds(), false),
  };
}

export function mediaMessage(s: Sender, body: MediaRequest): MessageRaw {
  const media = body.media ?? "";
  // Evolution names unnamed media (image.png, video.mp4, the URL's file name for documents)
  // and derives the mimetype from the file name.
  const fileName =
    body.fileName ??
    (body.mediatype === "image"
      ? "image.png"
      : body.mediatype === "video"
        ? "video.mp4"
        : body.mediatype === "document"
          ? /.*\/(.+?)\./.exec(media)?.[1]
          : undefined);
  const mimetype = mimeOf(body.fileName) ?? body.mimetype ?? mimeOf(isBase64(media) ? undefined : media) ?? mimeOf(fileName) ?? fallbackMime[body.mediatype];
  const up = upload(body.mediatype === "image" ? "7118" : body.mediatype === "video" ? "7161" : body.mediatype === "audio" ? "7117" : "7119", media);
  const caption = body.caption ? { caption: body.caption } : {};
  const context = contextFor(s, body, false);
  if (body.mediatype === "image") {
    const imageMessage = {
      url: up.url,
      mimetype,
      ...caption,
      fileSha256: up.fileSha256,
      fileLength: up.fileLength,
      height: 1350,
      width: 1080,
      mediaKey: up.mediaKey,
      fileEncSha256: up.fileEncSha256,
      directPath: up.directPath,
      mediaKeyTimestamp: up.mediaKeyTimestamp,
    };
    return base(s, { imageMessage }, "imageMessage", context);
  }
  if (body.mediatype === "video") {
    const videoMessage = {
      url: up.url,
      mimetype,
      ...caption,
      fileSha256: up.fileSha256,
      fileLength: up.fileLength,
      seconds: 12,
      mediaKey: up.mediaKey,
      height: 720,
      width: 1280,
      fileEncSha256: up.fileEncSha256,
      directPath: up.directPath,
      mediaKeyTimestamp: up.mediaKeyTimestamp,
    };
    return base(s, { videoMessage }, "videoMessage", context);
  }
  if (body.mediatype === "audio") {
    const audioMessage = {
      url: up.url,
      mimetype,
      fileSha256: up.fileSha256,
      fileLength: up.fileLength,
      seconds: 9,
      ptt: false,
      mediaKey: up.mediaKey,
      fileEncSha256: up.fileEncSha256,
      directPath: up.directPath,
      mediaKeyTimestamp: up.mediaKeyTimestamp,
    };
    return base(s, { audioMessage }, "audioMessage", context);
  }
  // documentWithCaptionMessage is reported as documentMessage (prepareMessage).
  const documentMessage = {
    url: up.url,
    mimetype,
    fileSha256: up.fileSha256,
    fileLength: up.fileLength,
    mediaKey: up.mediaKey,
    ...(fileName ? { fileName } : {}),
    fileEncSha256: up.fileEncSha256,
    directPath: up.directPath,
    mediaKeyTimestamp: up.mediaKeyTimestamp,
    ...caption,
  };
  return base(s, { documentMessage }, "documentMessage", context);
}

/** sendWhatsAppAudio always goes out as a voice note, transcoded to Opus/OGG. */
export function audioMessage(s: Sender, body: AudioRequest): MessageRaw {
  const up = upload("7117", body.audio ?? "");
  const audioMessage = {
    url: up.url,
    mimetype: "audio/ogg; codecs=opus",
    fileSha256: up.fileSha256,
    fileLength: up.fileLength,
    seconds: 9,
    ptt: true,
    mediaKey: up.mediaKey,
    fileEncSha256: up.fileEncSha256,
    directPath: up.directPath,
    mediaKeyTimestamp: up.mediaKeyTimestamp,
  };
  return base(s, { audioMessage }, "audioMessage");
}

// ---- webhook data ----

export function receipt(instance: Instance, raw: MessageRaw, status: ReceiptStatus, messageId: string) {
  return { keyId: raw.key.id, remoteJid: raw.key.remoteJid, fromMe: true, status, instanceId: instance.instanceId, messageId };
}

export type InboundText = {
  /** The chat: a phone number, `…@s.whatsapp.net`, `…@lid` or `…@g.us`. */
  from: string;
  text: string;
  fromMe: boolean;
  pushName?: string | null;
  id?: string;
  /** The other address of a 1:1 chat (the LID for a phone JID, or the phone JID for a LID). */
  remoteJidAlt?: string;
  /** Group messages: the author, and optionally the author's other address. */
  participant?: string;
  participantAlt?: string;
  quoted?: { id: string; text: string; participant?: string };
};

// Incoming messages arrive with DELIVERY_ACK; ones typed on the owner's phone with SERVER_ACK.
export function inboundText(instance: Instance, msg: InboundText) {
  const chat = recipient(msg.from).jid;
  const asJid = (value: string) => recipient(value).jid;
  const addressingMode = (msg.participant ? asJid(msg.participant) : chat).endsWith("@lid") ? "lid" : "pn";
  const key = {
    remoteJid: chat,
    ...(msg.remoteJidAlt ? { remoteJidAlt: asJid(msg.remoteJidAlt) } : {}),
    fromMe: msg.fromMe,
    id: msg.id ?? (msg.fromMe ? iosMessageId() : androidMessageId()),
    ...(msg.participant ? { participant: asJid(msg.participant) } : {}),
    ...(msg.participantAlt ? { participantAlt: asJid(msg.participantAlt) } : {}),
    addressingMode,
  };
  const pushName = msg.pushName !== undefined ? msg.pushName : msg.fromMe ? instance.profileName : null;
  return {
    key,
    pushName,
    status: msg.fromMe ? "SERVER_ACK" : "DELIVERY_ACK",
    message: {
      conversation: msg.text,
      messageContextInfo: {
        deviceListMetadata: {
          senderKeyHash: byteObject(10),
          senderTimestamp: long(unixSeconds() - 86_400, true),
          recipientKeyHash: byteObject(10),
          recipientTimestamp: long(unixSeconds() - 3_600, true),
        },
        deviceListMetadataVersion: 2,
        messageSecret: byteObject(32),
      },
    },
    ...(msg.quoted
      ? {
          contextInfo: {
            stanzaId: msg.quoted.id,
            participant: asJid(msg.quoted.participant ?? instance.wuid),
            quotedMessage: { conversation: msg.quoted.text },
            expiration: 0,
          },
        }
      : {}),
    messageType: "conversation",
    messageTimestamp: unixSeconds(),
    instanceId: instance.instanceId,
    source: msg.fromMe ? "ios" : "android",
  };
}

export function connectionUpdate(instance: Instance, state: Instance["state"], statusReason: number) {
  if (state === "open") {
    return {
      instance: instance.name,
      wuid: instance.wuid,
      profileName: instance.profileName,
      profilePictureUrl: instance.profilePictureUrl,
      state,
      statusReason,
    };
  }
  return { instance: instance.name, state, statusReason };
}

/** Sent together with connection.update `close` (the codes Evolution does not reconnect on). */
export function statusInstanceClosed(instance: Instance, code: number) {
  return {
    instance: instance.name,
    status: "closed",
    disconnectionAt: new Date().toISOString(),
    disconnectionReasonCode: code,
    disconnectionObject: JSON.stringify({
      error: { output: { statusCode: code, payload: { statusCode: code, error: reasonPhrase(code), message: "Connection Failure" } } },
      date: new Date().toISOString(),
    }),
  };
}

export function envelope(instance: Instance, event: string, data: unknown, serverUrl: string): Envelope {
  return {
    event,
    instance: instance.name,
    data,
    destination: instance.webhookUrl,
    date_time: new Date().toISOString(),
    sender: instance.wuid,
    server_url: serverUrl,
    apikey: instance.apikey,
  };
}
