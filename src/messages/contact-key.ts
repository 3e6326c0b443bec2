// One key per WhatsApp chat, for lanes (order), timelines and automation. Brazil put a 9 in front
// of its 8-digit mobile numbers, and WhatsApp still keys many older accounts by the 8-digit form:
// 55 31 8765-4321 and 55 31 9 8765-4321 are one chat, which Evolution reaches under either form
// (it tries both). Keyed by their 13-digit form, an API send written one way and an automation
// reply to the JID Evolution reported the other way wait in the same lane, in order.
// The address a message is sent to is never rewritten: only the key is.

// 55, a two-digit area code (no zeros), and an 8-digit number that is a mobile's (6 to 9 first);
// landlines (2 to 5 first) have no 9-digit form and stay as they are.
const brazilMobileWithout9 = /^55([1-9]{2})([6-9]\d{7})$/;
const brazilMobileWith9 = /^55([1-9]{2})9([6-9]\d{7})$/;

/** The chat's key for an address (phone digits, a group JID, a @lid JID): a Brazilian mobile in its
 *  13-digit form, anything else as given. */
export function contactKey(address: string): string {
  const m = brazilMobileWithout9.exec(address);
  return m ? `55${m[1]}9${m[2]}` : address;
}

/** Every way the chat's number may be written in stored rows (the key first): for queries that must
 *  find messages addressed, or stored before keys were canonical, under the other form. */
export function contactForms(address: string): string[] {
  const key = contactKey(address);
  const m = brazilMobileWith9.exec(key);
  return m ? [key, `55${m[1]}${m[2]}`] : [key];
}

const jidDigits = (jid: string) => jid.replace(/@.*$/, "").replace(/:\d+$/, "");

/** The digits of a WhatsApp phone JID (device suffix dropped), or undefined for any other JID. */
export const reportedNumber = (remoteJid: string): string | undefined => (remoteJid.endsWith("@s.whatsapp.net") ? jidDigits(remoteJid) : undefined);
