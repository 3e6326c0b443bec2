// Credentials the gateway sends to a provider in an HTTP header (an Evolution `apikey`, a bot
// token in an Authorization header or URL). A value that no header can carry (a line break, a
// control character, a character outside ASCII, surrounding spaces) would make every later call
// fail, so it is refused where it comes in.
import type { z } from "zod";

// Visible ASCII, no spaces: what every provider's keys and tokens are made of.
const HEADER_SAFE = /^[\x21-\x7E]+$/;

export const HEADER_SAFE_MESSAGE = "Must be visible ASCII characters only (no spaces, line breaks or other characters an HTTP header cannot carry).";

/** True when `value` can be sent as an HTTP header value exactly as given. */
export const canTravelInHeader = (value: string): boolean => HEADER_SAFE.test(value);

/** Adds the header check to a string schema: `headerSafe(z.string().min(1).max(500))`. */
export const headerSafe = <T extends z.ZodType<string>>(schema: T) => schema.refine(canTravelInHeader, { message: HEADER_SAFE_MESSAGE });
