import { describe, expect, it } from "vitest";
import { TtlCache } from "../../src/ttl-cache.ts";

describe("TtlCache", () => {
  it("keeps an entry for its lifetime, then forgets it", () => {
    const cache = new TtlCache<string, number>(1_000);
    cache.set("a", 1, 0);
    expect(cache.get("a", 999)).toBe(1);
    expect(cache.get("a", 1_000)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it("tells a cached undefined from a miss", () => {
    const cache = new TtlCache<string, string | undefined>(1_000);
    cache.set("none", undefined, 0);
    expect(cache.lookup("none", 1)).toEqual({ value: undefined });
    expect(cache.lookup("other", 1)).toBeUndefined();
  });

  it("holds at most maxEntries, dropping the least recently stored", () => {
    const cache = new TtlCache<string, number>(60_000, 3);
    for (const [i, key] of ["a", "b", "c"].entries()) cache.set(key, i, 0);
    cache.set("a", 10, 1); // stored again: now the newest
    cache.set("d", 3, 2);
    expect(cache.size).toBe(3);
    expect(cache.get("b", 3)).toBeUndefined();
    expect([cache.get("a", 3), cache.get("c", 3), cache.get("d", 3)]).toEqual([10, 2, 3]);
  });

  it("drops every entry whose value matches", () => {
    const cache = new TtlCache<string, { tenant: string }>(60_000);
    cache.set("k1", { tenant: "t1" }, 0);
    cache.set("k2", { tenant: "t2" }, 0);
    cache.set("k3", { tenant: "t1" }, 0);
    cache.deleteWhere((v) => v.tenant === "t1");
    expect([cache.get("k1", 1), cache.get("k2", 1), cache.get("k3", 1)]).toEqual([undefined, { tenant: "t2" }, undefined]);
  });
});
