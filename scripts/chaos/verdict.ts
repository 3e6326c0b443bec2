// The chaos run's verdict from what was observed: the messages the gateway holds (with their
// history), the sends the simulator received, the status events found on Kafka. Pure, so the
// rules can be read (and tested) apart from the processes.

/** `channel`: how the message entered (the API or a legacy Kafka record); `network`: where it goes
 *  (WhatsApp when absent). */
export type Planned = { n: number; text: string; contact: number; k: number; channel: "api" | "kafka"; scheduled: boolean; network?: Network };
export type Network = "whatsapp" | "telegram";
export type Observed = {
  /** API: n → message id, for the requests answered 2xx. */
  acceptedApi: Map<number, string>;
  /** Kafka: the n of every record Kafka acknowledged. */
  producedKafka: Set<number>;
  /** Kafka records the bridge dead-lettered: n → reason. */
  deadLettered: Map<number, string>;
  messages: GatewayMessage[];
  calls: SimCall[];
  /** message.status events read back from the status topic, in offset order per message. */
  statusEvents: { messageId: string; status: string }[];
  requests: ApiRequest[];
  restartWindows: { from: number; to: number }[];
  /** Texts that another API client of the Evolution instance also sent to the contact (the
   *  simulator's look-alikes with a Baileys id and `source: "web"`): nothing Evolution stores tells
   *  them from the gateway's own send, so reconciliation may take one for it or be unable to tell. */
  otherClientTexts?: Set<string>;
};
/** One API request: when it started and ended, and what came back (status 0: no answer). */
export type ApiRequest = { at: number; end?: number; status: number; path?: string; detail?: string };
export type GatewayMessage = {
  id: string;
  text?: string | undefined;
  status: string;
  lastError?: string;
  history: { status: string; detail?: string }[];
};
/** `relayed`: the message went out to WhatsApp on this call, whatever was answered (a 201, or a
 *  500/502 after relaying); absent, a 201 stands for it. */
export type SimCall = { text: string | undefined; number: string; status: number; answeredAt: number | undefined; relayed?: boolean };
/** A call of the Telegram stand-in: `sent` whatever the answer (a 502 after the send, a late 200),
 *  `at` when the message went out (the start of the call: a hang answers only afterwards). */
export type TelegramCall = { text: string | undefined; chat: string; status: number; at: number; sent: boolean; insideRetryAfter: boolean };

export type Verdict = {
  accepted: { api: number; kafka: number; total: number };
  terminal: Record<string, number>;
  notTerminal: number;
  failedWithoutReason: number;
  lost: number;
  lostDetail: Record<string, number>;
  /** Recorded sent (or delivered, read) while the simulator never relayed its request: the gateway
   *  took another message (typed on the phone, another client's) for it. */
  markedSentNeverSent: number;
  /** Their texts, for the run's never-sent.json. */
  markedSentTexts: string[];
  sentTwice: number;
  extraSends: number;
  /** The documented exposure, reported apart from the goals: another API client of the instance sent
   *  the same text while an attempt hung. Recorded sent under that client's message id when the
   *  attempt never went out (`neverSent`); sent again after "cannot tell" when it did (`sentTwice`). */
  otherClient: { neverSent: number; sentTwice: number; texts: string[] };
  outOfOrder: number;
  /** The contacts with a send out of order, for the run's order.json. */
  outOfOrderContacts: number[];
  /** The texts sent more than once, for the run's twice.json. */
  sentTwiceTexts: string[];
  regressions: number;
  missingEvents: number;
  serverErrors: { outside: number; inside: number; outsideList: string[] };
  examples: Record<string, string[]>;
};

const rank: Record<string, number> = { scheduled: 0, queued: 1, processing: 2, sent: 3, delivered: 4, read: 5 };
const terminalStatuses = new Set(["sent", "delivered", "read", "failed", "canceled"]);

export function judge(planned: Planned[], o: Observed): Verdict {
  const examples: Record<string, string[]> = {};
  const example = (kind: string, what: string) => {
    const list = examples[kind] ?? [];
    examples[kind] = list;
    if (list.length < 5) list.push(what);
  };
  const byText = new Map<string, GatewayMessage[]>();
  for (const m of o.messages) if (m.text !== undefined) byText.set(m.text, [...(byText.get(m.text) ?? []), m]);
  // What reached WhatsApp, by text: a 500/502 after relaying counts, as the contact got it.
  const okCalls = new Map<string, SimCall[]>();
  for (const c of o.calls) if ((c.relayed ?? c.status === 201) && c.text !== undefined) okCalls.set(c.text, [...(okCalls.get(c.text) ?? []), c]);

  const accepted = planned.filter((p) => (p.channel === "api" ? o.acceptedApi.has(p.n) : o.producedKafka.has(p.n)));
  const terminal: Record<string, number> = {};
  const lostDetail: Record<string, number> = {};
  const lose = (why: string, p: Planned) => {
    lostDetail[why] = (lostDetail[why] ?? 0) + 1;
    example(`lost: ${why}`, p.text);
  };
  let notTerminal = 0;
  let failedWithoutReason = 0;
  let regressions = 0;
  let missingEvents = 0;
  let sentTwice = 0;
  let extraSends = 0;
  const sentTwiceTexts: string[] = [];
  let markedSentNeverSent = 0;
  const markedSentTexts: string[] = [];
  const otherClient = { neverSent: 0, sentTwice: 0, texts: [] as string[] };
  // Only what the gateway's history says it did about the look-alike counts as that case: taken as
  // found, or "cannot tell" and sent again. Anything else stays a missed goal.
  const otherClientCase = (text: string, m: GatewayMessage | undefined, said: string) =>
    (o.otherClientTexts?.has(text) ?? false) && (m?.history.some((h) => h.detail?.includes(said)) ?? false);

  const eventsOf = new Map<string, string[]>();
  for (const e of o.statusEvents) eventsOf.set(e.messageId, [...(eventsOf.get(e.messageId) ?? []), e.status]);

  for (const p of accepted) {
    const rows = byText.get(p.text) ?? [];
    const sends = okCalls.get(p.text) ?? [];
    if (sends.length > 1 && otherClientCase(p.text, rows[0], "cannot tell whether it went")) {
      otherClient.sentTwice++;
      otherClient.texts.push(p.text);
    } else if (sends.length > 1) {
      sentTwice++;
      sentTwiceTexts.push(p.text);
      extraSends += sends.length - 1;
      example("sent twice", `${p.text} (${sends.length} sends)`);
    }
    if (rows.length === 0) {
      lose(o.deadLettered.has(p.n) ? `dead-lettered by the bridge (${o.deadLettered.get(p.n)})` : "never created", p);
      continue;
    }
    if (rows.length > 1) {
      lose("created more than once", p);
      example("created twice", p.text);
    }
    const m = rows[0]!;
    if (!terminalStatuses.has(m.status)) {
      notTerminal++;
      lose(`stuck in ${m.status}`, p);
    } else {
      terminal[m.status] = (terminal[m.status] ?? 0) + 1;
      if (m.status === "failed" && !m.lastError) failedWithoutReason++;
      if (rank[m.status] !== undefined && rank[m.status]! >= rank.sent! && sends.length === 0 && otherClientCase(p.text, m, "reconciled: found in Evolution")) {
        otherClient.neverSent++;
        otherClient.texts.push(p.text);
      } else if (rank[m.status] !== undefined && rank[m.status]! >= rank.sent! && sends.length === 0) {
        markedSentNeverSent++;
        markedSentTexts.push(p.text);
        example("marked sent but never sent", `${m.id} ${m.status}: ${p.text}`);
      }
    }
    if (regressed(m.history.map((h) => h.status)) || (rank[m.status] ?? 99) < maxRank(m.history.map((h) => h.status))) {
      regressions++;
      example("regression", `${m.id}: ${m.history.map((h) => h.status).join(" → ")} (now ${m.status})`);
    }
    const events = eventsOf.get(m.id) ?? [];
    if (regressed(events)) {
      regressions++;
      example("regression on Kafka", `${m.id}: ${events.join(" → ")}`);
    }
    if (!events.includes(m.status)) {
      missingEvents++;
      example("missing event", `${m.id} ${m.status} (on Kafka: ${events.join(", ") || "none"})`);
    }
  }

  // Per contact, in the order the sends went out: a message older than one already out is out of order.
  let outOfOrder = 0;
  const outOfOrderContacts = new Set<number>();
  const firstSends = accepted
    .flatMap((p) => {
      const first = (okCalls.get(p.text) ?? []).toSorted((a, b) => (a.answeredAt ?? 0) - (b.answeredAt ?? 0))[0];
      return first ? [{ p, at: first.answeredAt ?? 0 }] : [];
    })
    .toSorted((a, b) => a.at - b.at);
  const highest = new Map<number, number>();
  for (const { p } of firstSends) {
    const top = highest.get(p.contact) ?? -1;
    if (p.k < top) {
      outOfOrder++;
      outOfOrderContacts.add(p.contact);
      example("out of order", `contact ${p.contact}: k${p.k} after k${top}`);
    }
    highest.set(p.contact, Math.max(top, p.k));
  }

  // A request belongs to a restart window when its life overlaps it: one started just before the
  // kill and cut by it is the kill's doing, not an answer of the gateway.
  const inside = (r: ApiRequest) => o.restartWindows.some((w) => r.at <= w.to && (r.end ?? r.at) >= w.from);
  const serverErrors = { outside: 0, inside: 0, outsideList: [] as string[] };
  for (const r of o.requests) {
    if (r.status !== 0 && r.status < 500) continue;
    if (inside(r)) {
      serverErrors.inside++;
      continue;
    }
    serverErrors.outside++;
    const line = `${[r.status || "no answer", r.path, whenAgainstWindows(r, o.restartWindows)].filter(Boolean).join(" ")}${r.detail ? `: ${r.detail}` : ""}`;
    serverErrors.outsideList.push(line);
    example("5xx outside restart windows", line);
  }

  const lost = Object.values(lostDetail).reduce((a, b) => a + b, 0);
  return {
    accepted: { api: accepted.filter((p) => p.channel === "api").length, kafka: accepted.filter((p) => p.channel === "kafka").length, total: accepted.length },
    terminal,
    notTerminal,
    failedWithoutReason,
    lost,
    lostDetail,
    markedSentNeverSent,
    markedSentTexts,
    sentTwice,
    extraSends,
    otherClient,
    outOfOrder,
    outOfOrderContacts: [...outOfOrderContacts],
    sentTwiceTexts,
    regressions,
    missingEvents,
    serverErrors,
    examples,
  };
}

/** "at +12.3 s, 4.1 s after restart window 1 closed" (times relative to the first window's start, or the run's first request). */
function whenAgainstWindows(r: ApiRequest, windows: { from: number; to: number }[]): string {
  const took = r.end === undefined ? "" : `, answered after ${((r.end - r.at) / 1000).toFixed(1)} s`;
  let nearest = "";
  let best = Number.POSITIVE_INFINITY;
  windows.forEach((w, i) => {
    const after = r.at - w.to;
    const before = w.from - (r.end ?? r.at);
    if (after > 0 && after < best) {
      best = after;
      nearest = `${(after / 1000).toFixed(1)} s after restart window ${i + 1} closed`;
    }
    if (before > 0 && before < best) {
      best = before;
      nearest = `${(before / 1000).toFixed(1)} s before restart window ${i + 1} opened`;
    }
  });
  return `(${nearest || "no restart window"}${took})`;
}

function maxRank(statuses: string[]): number {
  return Math.max(-1, ...statuses.map((s) => rank[s] ?? -1));
}

/** Once a message was sent, nothing before it in the lifecycle may follow (failed may: an error receipt). */
export function regressed(statuses: string[]): boolean {
  let top = -1;
  for (const s of statuses) {
    const r = rank[s];
    if (r === undefined) continue;
    if (top >= rank.sent! && r < top) return true;
    top = Math.max(top, r);
  }
  return false;
}

export function goalsMet(v: Verdict): boolean {
  return (
    v.lost === 0 &&
    v.markedSentNeverSent === 0 &&
    v.sentTwice === 0 &&
    v.outOfOrder === 0 &&
    v.regressions === 0 &&
    v.missingEvents === 0 &&
    v.serverErrors.outside === 0 &&
    v.failedWithoutReason === 0
  );
}

/** Telegram's verdict. Its in-doubt policy is at most once: a send that timed out fails and is not
 *  sent again, so "failed, may have gone out" is expected and reported apart from the losses. A
 *  5xx is retried (the Bot API documents it as transient), so a send that took effect and was
 *  answered 5xx goes out twice: counted in its own row, not hidden in "sent twice". */
export type TelegramVerdict = Omit<Verdict, "serverErrors" | "accepted"> & {
  accepted: number;
  /** Sent more than once where every send but the last was answered 5xx (the retry the policy makes). */
  sentTwiceAfter5xx: number;
  extraSendsAfter5xx: number;
  /** Failed as in doubt (a timeout, or a runtime killed during the call), and of those, how many went out. */
  failedInDoubt: number;
  inDoubtWentOut: number;
  /** Their texts, for the run's telegram.json. */
  inDoubtTexts: string[];
  /** Calls made while a retry_after answered earlier to that chat or bot was still running. */
  insideRetryAfter: number;
};

export function judgeTelegram(planned: Planned[], o: Observed, calls: TelegramCall[]): TelegramVerdict {
  const asSim: SimCall[] = calls.map((c) => ({ text: c.text, number: c.chat, status: c.status, answeredAt: c.at, relayed: c.sent }));
  const v = judge(planned, { ...o, calls: asSim, requests: [], restartWindows: [] });
  const sendsOf = new Map<string, TelegramCall[]>();
  for (const c of calls) if (c.sent && c.text !== undefined) sendsOf.set(c.text, [...(sendsOf.get(c.text) ?? []), c]);
  const examples = Object.fromEntries(Object.entries(v.examples).filter(([kind]) => kind !== "sent twice"));
  const example = (kind: string, what: string) => {
    const list = examples[kind] ?? [];
    examples[kind] = list;
    if (list.length < 5) list.push(what);
  };
  let sentTwice = 0;
  let extraSends = 0;
  let sentTwiceAfter5xx = 0;
  let extraSendsAfter5xx = 0;
  const sentTwiceTexts: string[] = [];
  for (const text of v.sentTwiceTexts) {
    const sends = (sendsOf.get(text) ?? []).toSorted((a, b) => a.at - b.at);
    const statuses = sends.map((s) => s.status).join(", ");
    if (sends.slice(0, -1).every((s) => s.status >= 500)) {
      sentTwiceAfter5xx++;
      extraSendsAfter5xx += sends.length - 1;
      example("sent twice after a 5xx that took effect", `${text} (${statuses})`);
    } else {
      sentTwice++;
      extraSends += sends.length - 1;
      sentTwiceTexts.push(text);
      example("sent twice", `${text} (${statuses})`);
    }
  }
  const texts = new Set(planned.map((p) => p.text));
  const inDoubt = o.messages.filter((m) => m.text !== undefined && texts.has(m.text) && m.status === "failed" && /in doubt/i.test(m.lastError ?? ""));
  const wentOut = inDoubt.filter((m) => (sendsOf.get(m.text ?? "") ?? []).length > 0);
  const { serverErrors: _, accepted, ...rest } = v;
  return {
    ...rest,
    accepted: accepted.total,
    sentTwice,
    extraSends,
    sentTwiceTexts,
    sentTwiceAfter5xx,
    extraSendsAfter5xx,
    failedInDoubt: inDoubt.length,
    inDoubtWentOut: wentOut.length,
    inDoubtTexts: inDoubt.map((m) => m.text ?? ""),
    insideRetryAfter: calls.filter((c) => c.insideRetryAfter).length,
    examples,
  };
}

export function telegramGoalsMet(v: TelegramVerdict): boolean {
  return (
    v.lost === 0 &&
    v.markedSentNeverSent === 0 &&
    v.sentTwice === 0 &&
    v.outOfOrder === 0 &&
    v.regressions === 0 &&
    v.missingEvents === 0 &&
    v.failedWithoutReason === 0 &&
    v.insideRetryAfter === 0
  );
}
