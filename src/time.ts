// Times leave the gateway as ISO 8601 strings; rows keep epoch milliseconds.
export function iso(ms: number): string;
export function iso(ms: number | null | undefined): string | undefined;
export function iso(ms: number | null | undefined): string | undefined {
  return ms === null || ms === undefined ? undefined : new Date(ms).toISOString();
}
