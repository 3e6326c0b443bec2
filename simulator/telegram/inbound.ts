// Updates a user's action produces: a message (text, photo, document, voice, video, audio, sticker,
// location, contact), an edit of an earlier message, or a press on an inline button.
import { z } from "zod";
import { chatIdInput, chatTypes } from "./config.ts";
import { type FileKind, fileFields, type Message, newFile, unixSeconds, type Update, type User } from "./shapes.ts";
import type { Bot, KnownChat, TelegramState } from "./state.ts";

const fileHints = z.union([
  z.literal(true),
  z.looseObject({ file_name: z.string().optional(), mime_type: z.string().optional(), file_size: z.number().int().optional() }),
]);

export const inboundInput = z.strictObject({
  token: z.string(),
  chatId: chatIdInput.refine((id) => typeof id === "number", "a numeric chat id"),
  chatType: z.enum(chatTypes).optional(),
  chatTitle: z.string().optional(),
  from: z
    .strictObject({
      id: z.number().int().positive(),
      first_name: z.string().min(1),
      last_name: z.string().optional(),
      username: z.string().optional(),
      language_code: z.string().optional(),
    })
    .optional(),
  text: z.string().min(1).optional(),
  caption: z.string().optional(),
  photo: fileHints.optional(),
  document: fileHints.optional(),
  voice: fileHints.optional(),
  video: fileHints.optional(),
  audio: fileHints.optional(),
  sticker: fileHints.optional(),
  location: z.strictObject({ latitude: z.number(), longitude: z.number() }).optional(),
  contact: z
    .strictObject({ phone_number: z.string(), first_name: z.string(), last_name: z.string().optional(), user_id: z.number().int().optional() })
    .optional(),
  /** An edit of the message `messageId` (default: the user's last message in the chat). */
  edited: z.literal(true).optional(),
  messageId: z.number().int().positive().optional(),
  /** A press on an inline button of the bot's message `messageId` (default: its last one; one it does not
   *  know comes as an InaccessibleMessage). */
  callbackData: z.string().min(1).max(64).optional(),
  /** Post this update twice (a duplicate delivery). */
  duplicate: z.boolean().default(false),
  /** Answer after the delivery finished (with its retries). */
  wait: z.boolean().default(false),
});
export type InboundInput = z.infer<typeof inboundInput>;

const kinds: FileKind[] = ["photo", "document", "voice", "video", "audio", "sticker"];

/** The update for this input, or a reason it cannot be built. */
export function buildUpdate(tg: TelegramState, bot: Bot, input: InboundInput): { update: Update; chat: KnownChat } | { error: string } {
  const id = Number(input.chatId);
  const type = input.chatType;
  const from: User = input.from
    ? { is_bot: false, ...input.from }
    : { id: id > 0 ? id : 424242001, is_bot: false, first_name: id > 0 ? `User ${id}` : "Member" };
  const names =
    type === "private" || (type === undefined && id > 0)
      ? { first_name: from.first_name, ...(from.last_name ? { last_name: from.last_name } : {}), ...(from.username ? { username: from.username } : {}) }
      : {};
  const known = tg.chatsOf(bot).get(id);
  // A user who writes to the bot has started it (and unblocked it).
  const chat = tg.upsertChat(bot, id, {
    ...(type ? { type } : {}),
    ...(input.chatTitle ? { title: input.chatTitle } : {}),
    ...(known ? {} : names),
    state: "active",
  });
  const isChannel = chat.chat.type === "channel";
  const nextUpdateId = () => ++bot.updateSeq;

  if (input.callbackData !== undefined) {
    const known =
      input.messageId !== undefined ? chat.messages.get(input.messageId) : [...chat.messages.values()].reverse().find((m) => m.from?.id === bot.user.id);
    // A message the simulator never saw (or forgot) comes as Telegram's InaccessibleMessage.
    const message = known ?? { chat: chat.chat, message_id: input.messageId ?? Math.max(1, chat.lastMessageId), date: 0 as const };
    const query = {
      id: String(BigInt(from.id) * 4096n + BigInt(bot.updateSeq % 4096)),
      from,
      message,
      chat_instance: String(-Math.abs(id * 7919 + bot.user.id)),
      data: input.callbackData,
    };
    return { update: { update_id: nextUpdateId(), callback_query: query }, chat };
  }

  const content: Partial<Message> = {};
  if (input.text !== undefined) content.text = input.text;
  for (const kind of kinds) {
    const hints = input[kind];
    if (hints === undefined) continue;
    const { file_name, mime_type, file_size, ...rest } = hints === true ? {} : hints;
    const file = newFile(kind, {
      ...rest,
      ...(file_name ? { name: file_name } : {}),
      ...(mime_type ? { mime: mime_type } : {}),
      ...(file_size ? { size: file_size } : {}),
    });
    tg.rememberFile(file);
    Object.assign(content, fileFields(file));
  }
  if (input.location) content.location = input.location;
  if (input.contact) content.contact = input.contact;
  if (input.caption !== undefined) content.caption = input.caption;
  if (Object.keys(content).length === 0) return { error: "give text, a media kind, location, contact or callbackData" };

  const author = isChannel ? { sender_chat: chat.chat } : { from };
  if (input.edited) {
    const original =
      input.messageId !== undefined
        ? chat.messages.get(input.messageId)
        : [...chat.messages.values()].reverse().find((m) => (isChannel ? m.sender_chat !== undefined : m.from?.id === from.id));
    if (!original) return { error: "no earlier message to edit" };
    const edited: Message = { message_id: original.message_id, ...author, chat: chat.chat, date: original.date, edit_date: unixSeconds(), ...content };
    tg.keepMessage(chat, edited);
    return { update: { update_id: nextUpdateId(), [isChannel ? "edited_channel_post" : "edited_message"]: edited }, chat };
  }
  const message: Message = { message_id: tg.nextMessageId(chat), ...author, chat: chat.chat, date: unixSeconds(), ...content };
  tg.keepMessage(chat, message);
  return { update: { update_id: nextUpdateId(), [isChannel ? "channel_post" : "message"]: message }, chat };
}
