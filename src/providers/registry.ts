// The providers by channel. A new channel is one folder behind the seam and one line here.
import { evolutionProvider } from "./evolution.ts";
import type { Channel, Provider } from "./provider.ts";
import { telegramProvider } from "./telegram/index.ts";
import { webProvider } from "./web/index.ts";

const providers: Record<Channel, Provider> = {
  whatsapp: evolutionProvider,
  telegram: telegramProvider,
  web: webProvider,
};

export const providerFor = (channel: Channel): Provider => providers[channel];

/** A stored channel name; rows written before channels existed are WhatsApp. */
export const channelOf = (stored: string | null | undefined): Channel => (stored === "telegram" || stored === "web" ? stored : "whatsapp");
