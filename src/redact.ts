// Secrets out of error text that is stored and shown (lastError, history, events), not only
// logged: driver and HTTP errors can quote the Evolution API key, a URL with credentials or the
// webhook URL whose path is the instance's token. Shapes are the log scrubber's (scrubText).
import { REDACTED, scrubText } from "./observability/log.ts";

export function redact(text: string, secrets: (string | null | undefined)[] = []): string {
  let out = text;
  for (const secret of secrets) {
    // Short values would redact ordinary words; real keys and tokens are long.
    if (secret && secret.length >= 8) out = out.split(secret).join(REDACTED);
  }
  return scrubText(out.replace(/(\/\/)[^/\s:@]+:[^/\s@]+@/g, `$1${REDACTED}@`));
}
