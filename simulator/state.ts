// Everything the simulator remembers: instances, settings, the send calls it received, the
// scripted faults still to fire, the webhooks it posted, and its pending timers.
import type { Fault, InstanceSettings, SimulatorConfig } from "./config.ts";
import type { SendRoute } from "./requests.ts";
import type { Instance } from "./instance.ts";
import type { Envelope, MessageRaw, ReceiptStatus } from "./shapes.ts";

export type { Instance };

export type CallRecord = {
  seq: number;
  at: number;
  instance: string;
  route: SendRoute | "sendPresence";
  /** Normalised digits for a phone number, else the JID as sent ("" when the body had none). */
  number: string;
  body: unknown;
  /** HTTP status answered; 0 when the connection was dropped (or while still in flight). */
  status: number;
  keyId?: string;
  pending?: boolean;
  /** When the answer left (after any latency or hang): the moment a 201 message went out. */
  answeredAt?: number;
  /** The message went out to WhatsApp on this call, whatever was answered (a 201, or a 500/502
   *  after the relay). */
  relayed?: boolean;
};

export type WebhookRecord = {
  seq: number;
  at: number;
  instance: string;
  event: string;
  url: string;
  /** Last HTTP status from the receiver; 0 for a network error or before the first answer. */
  status: number;
  attempts: number;
  /** "dropped": a chaos run chose never to deliver it (simulator/chaos.ts). */
  outcome: "pending" | "delivered" | "failed" | "dropped";
  /** When the receiver answered 2xx. */
  deliveredAt?: number;
  error?: string;
  keyId?: string;
  body: Envelope;
};

type PendingFault = Fault & { remaining: number };
export type FaultMatch = { instance: string; number: string; jid: string; route: SendRoute | "sendPresence" | "findMessages" };

type Timer = ReturnType<typeof setTimeout>;

// Sent messages kept for quoting by id; the oldest are forgotten past this many.
const keptMessages = 10_000;

export class SimulatorState {
  readonly instances = new Map<string, Instance>();
  readonly calls: CallRecord[] = [];
  readonly webhooks: WebhookRecord[] = [];
  faults: PendingFault[] = [];
  readonly messageIds = new Set<string>();
  private readonly sent = new Map<string, MessageRaw>();
  /** Receipt statuses each sent message reached (Evolution's MessageUpdate rows), by key id. */
  readonly statuses = new Map<string, ReceiptStatus[]>();
  /** Evolution's message store (DATABASE_SAVE_DATA_NEW_MESSAGE): off for all, or per instance. */
  store = { enabled: true, offFor: new Set<string>() };
  private readonly timers = new Set<Timer>();
  private readonly wakers = new Set<() => void>();
  private callSeq = 0;
  private webhookSeq = 0;
  stopped = false;

  constructor(public config: Omit<SimulatorConfig, "instances">) {}

  upsertInstance(name: string, settings: InstanceSettings): Instance {
    const existing = this.instances.get(name);
    const owner = settings.ownerNumber ?? existing?.wuid.split("@")[0] ?? "5511955550000";
    const instance: Instance = {
      name,
      apikey: settings.apikey,
      // Omitted keeps the current webhook; null removes it.
      webhookUrl: settings.webhookUrl === undefined ? existing?.webhookUrl : (settings.webhookUrl ?? undefined),
      byEvents: settings.byEvents ?? existing?.byEvents ?? false,
      webhookHeaders: settings.webhookHeaders ?? existing?.webhookHeaders ?? {},
      state: settings.state ?? existing?.state ?? "open",
      instanceId: existing?.instanceId ?? crypto.randomUUID(),
      wuid: `${owner}@s.whatsapp.net`,
      profileName: settings.profileName ?? existing?.profileName ?? name,
      profilePictureUrl: existing?.profilePictureUrl ?? `https://pps.whatsapp.net/v/t61.24694-24/sim_${owner}_n.jpg?ccb=11-4&_nc_sid=5e03e0`,
      createdAt: existing?.createdAt ?? Math.floor(Date.now() / 1000),
    };
    this.instances.set(name, instance);
    return instance;
  }

  beginCall(call: Omit<CallRecord, "seq" | "at" | "status" | "pending">): CallRecord {
    const record: CallRecord = { seq: ++this.callSeq, at: Date.now(), status: 0, pending: true, ...call };
    this.calls.push(record);
    return record;
  }

  /** Takes one use of the first queued fault matching this send (FIFO). */
  takeFault(send: FaultMatch): Fault | undefined {
    const index = this.faults.findIndex(
      (f) =>
        (f.instance === undefined || f.instance === send.instance) &&
        (f.route === undefined || f.route === send.route) &&
        (f.number === undefined || f.number === send.number || f.number === send.jid || f.number.replace(/[\s+()-]/g, "") === send.number),
    );
    const fault = this.faults[index];
    if (!fault) return undefined;
    fault.remaining -= 1;
    if (fault.remaining <= 0) this.faults.splice(index, 1);
    return fault;
  }

  addFault(fault: Fault): void {
    this.faults.push({ ...fault, remaining: fault.times });
  }

  recordWebhook(hook: Omit<WebhookRecord, "seq" | "at" | "status" | "attempts" | "outcome">): WebhookRecord {
    const record: WebhookRecord = { seq: ++this.webhookSeq, at: Date.now(), status: 0, attempts: 0, outcome: "pending", ...hook };
    this.webhooks.push(record);
    return record;
  }

  remember(raw: MessageRaw): void {
    this.sent.set(raw.key.id, raw);
    if (this.sent.size > keptMessages) {
      const oldest = this.sent.keys().next().value;
      if (oldest !== undefined) {
        this.sent.delete(oldest);
        this.statuses.delete(oldest);
      }
    }
  }

  /** Sent messages in the order they went (for findMessages). */
  sentMessages(): IterableIterator<MessageRaw> {
    return this.sent.values();
  }

  recordStatus(keyId: string, status: ReceiptStatus): void {
    if (!this.sent.has(keyId)) return;
    const list = this.statuses.get(keyId) ?? [];
    list.push(status);
    this.statuses.set(keyId, list);
  }

  sentMessage(id: string): MessageRaw | undefined {
    return this.sent.get(id);
  }

  /** Clears the records a test looks at; sequence numbers keep counting so `since` stays valid. */
  clearRecords(): void {
    this.calls.length = 0;
    this.webhooks.length = 0;
    this.faults = [];
  }

  /** Runs `task` after `ms`, unless the simulator stops first. */
  later(ms: number, task: () => void): void {
    if (this.stopped) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      task();
    }, ms);
    this.timers.add(timer);
  }

  /** Resolves after `ms`, or at once when the simulator stops. */
  sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.timers.delete(timer);
        this.wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.timers.add(timer);
      this.wakers.add(wake);
    });
  }

  /** Cancels pending webhooks and retries (for shutdown). */
  stop(): void {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const wake of [...this.wakers]) wake();
  }
}
