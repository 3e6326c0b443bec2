// An Evolution instance as the simulator keeps it: what the state stores and the payload shapes read.
import type { ConnectionState } from "./config.ts";

export type Instance = {
  name: string;
  apikey: string;
  webhookUrl: string | undefined;
  byEvents: boolean;
  webhookHeaders: Record<string, string>;
  state: ConnectionState;
  /** Evolution's per-instance UUID (`instanceId` in payloads). */
  instanceId: string;
  /** The owner's JID: the envelopes' `sender`. */
  wuid: string;
  profileName: string;
  profilePictureUrl: string;
  /** Unix seconds; used as the ephemeral-setting timestamp of 1:1 chats. */
  createdAt: number;
};
