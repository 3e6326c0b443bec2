// Reading an answer from a server we do not run (a tenant's Evolution, a handler) with a ceiling:
// a hostile or broken server could otherwise stream an endless body into the isolate's memory.

export const MAX_ANSWER_BYTES = 1024 * 1024;

export class AnswerTooLarge extends Error {
  constructor(readonly maxBytes: number) {
    super(`the answer is larger than ${Math.floor(maxBytes / 1024)} KiB`);
  }
}

/** The body as text, read up to `maxBytes`; past that the read stops and AnswerTooLarge is thrown. */
export async function readCapped(res: Response, maxBytes = MAX_ANSWER_BYTES): Promise<string> {
  const declared = Number(res.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await res.body?.cancel();
    throw new AnswerTooLarge(maxBytes);
  }
  if (!res.body) return "";
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let read = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    read += value.byteLength;
    if (read > maxBytes) {
      await reader.cancel();
      throw new AnswerTooLarge(maxBytes);
    }
    text += decoder.decode(value, { stream: true });
  }
  return text + decoder.decode();
}
