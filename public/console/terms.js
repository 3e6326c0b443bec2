// The gateway's words as the pages show them: message statuses, channels, conversation states, and
// which conversation an address belongs to.

export const STATUSES = ["scheduled", "queued", "processing", "sent", "delivered", "read", "failed", "canceled"];
export const CHANNELS = ["whatsapp", "telegram", "web"];
export const STATES = { agent: "agent", human: "human", failed: "agent failed" };

// A conversation's page: its instance and its contact (a contact is per instance).
export const conversationHref = (instance, contact) => `#/conversations/${encodeURIComponent(instance)}/${encodeURIComponent(contact)}`;

// The gateway's key for a WhatsApp chat: a Brazilian mobile in its 13-digit form (55, area code,
// 9, eight digits), so an event addressed to either form is this conversation's. Other channels'
// addresses are their keys.
export const contactKey = (address, channel = "whatsapp") => {
  const m = channel === "whatsapp" ? /^55([1-9]{2})([6-9]\d{7})$/.exec(address ?? "") : null;
  return m ? `55${m[1]}9${m[2]}` : address;
};
