// One JSON line per event: operators grep and ship these; failures always carry `error`.
export type Level = "debug" | "info" | "warn" | "error";
export type Logger = (level: Level, msg: string, fields?: Record<string, unknown>) => void;

const rank: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function jsonLogger(min: Level = "info", write: (line: string) => void = (line) => process.stdout.write(line + "\n")): Logger {
  return (level, msg, fields = {}) => {
    if (rank[level] < rank[min]) return;
    write(JSON.stringify({ ts: new Date().toISOString(), level, component: "bridge", msg, ...fields }));
  };
}

export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}
