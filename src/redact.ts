// Secrets out of error text before it is logged or stored (lastError, history, log lines):
// driver and HTTP errors can quote a URL with credentials, the Evolution API key, or the
// webhook URL whose path is the instance's token.
const REDACTED = "[redacted]";

export function redact(text: string, secrets: (string | null | undefined)[] = []): string {
  let out = text;
  for (const secret of secrets) {
    // Short values would redact ordinary words; real keys and tokens are long.
    if (secret && secret.length >= 8) out = out.split(secret).join(REDACTED);
  }
  return out
    .replace(/(\/webhooks\/evolution\/)[^/\s"'?#]+/g, `$1${REDACTED}`)
    .replace(/(\/\/)[^/\s:@]+:[^/\s@]+@/g, `$1${REDACTED}@`)
    .replace(/("?apikey"?\s*[:=]\s*"?)[^"\s,}]+/gi, `$1${REDACTED}`)
    .replace(/(Bearer\s+)\S+/gi, `$1${REDACTED}`);
}
