// A real single-node Apache Kafka broker (KRaft, broker+controller in one JVM) for local runs and tests,
// built only from Maven Central jars: no Docker, no apache.org tarball.
//
//   import { startKafka } from "../../tools/harness/kafka.ts";
//   const kafka = await startKafka();          // free loopback ports, temp state dir
//   ... new Kafka({ brokers: [kafka.brokers] }) ...
//   await kafka.stop();
//
// CLI: tsx tools/harness/kafka.ts start|stop|status|fetch   (see runCli at the bottom)
//
// Env: KAFKA_BROKERS        use this broker instead of starting one (startKafka returns it, stop is a no-op)
//      KAFKA_LOCAL_CACHE    jar cache root (default ~/.cache/mensageiro); jars go to <root>/kafka-<version>/lib
//      KAFKA_LOCAL_VERSION  Kafka version to fetch (default 4.1.1; 4.x only)
import { execFile, spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Kafka, logLevel, Partitioners } from "kafkajs";
import { waitFor } from "./wait.ts";

const run = promisify(execFile);

const KAFKA_VERSION = process.env.KAFKA_LOCAL_VERSION ?? "4.1.1";
// The Maven project and log settings beside this file, in kafka/.
const FILES_DIR = path.join(import.meta.dirname, "kafka");
const REPO_ROOT = path.resolve(import.meta.dirname, "../..");
const POM = path.join(FILES_DIR, "pom.xml");
const BROKER_LOG_CONFIG = path.join(FILES_DIR, "log4j2.yaml");
const TOOLS_LOG_CONFIG = path.join(FILES_DIR, "tools-log4j2.yaml");
const MIN_JAVA = 17;
const READY_TIMEOUT_MS = 90_000;
const STOP_GRACE_MS = 15_000;
const READY_LINE = "Kafka Server started";
const COMPLETE_MARKER = ".complete.json";

// Short-lived tool JVMs: start fast, small heap.
const TOOL_JVM = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xmx256m"];
// Broker JVM: kafka-run-class.sh's flags with a test-sized heap.
const BROKER_JVM = [
  "-Xms256m",
  "-Xmx768m",
  "-server",
  "-XX:+UseG1GC",
  "-XX:MaxGCPauseMillis=20",
  "-XX:InitiatingHeapOccupancyPercent=35",
  "-XX:+ExplicitGCInvokesConcurrent",
  "-XX:+ExitOnOutOfMemoryError",
  "-Djava.awt.headless=true",
];

export interface StartOptions {
  /** PLAINTEXT (client) port on 127.0.0.1; a free one by default. */
  port?: number;
  /** CONTROLLER (KRaft quorum) port on 127.0.0.1; a free one by default. */
  controllerPort?: number;
  /** Kept after stop() when given; a temp dir (removed on stop) by default. */
  stateDir?: string;
}

export interface KafkaHandle {
  /** Bootstrap servers for clients, e.g. "127.0.0.1:9092". */
  brokers: string;
  stop(): Promise<void>;
}

interface BrokerLayout {
  port: number;
  controllerPort: number;
  stateDir: string;
}

interface RunningBroker extends KafkaHandle {
  pid: number;
}

// ---------------------------------------------------------------------------------------------------
// Jars

/** Downloads the broker's runtime classpath once (outside the repo) and returns the lib dir. */
export async function ensureKafkaJars(): Promise<string> {
  const libDir = kafkaLibDir();
  if (existsSync(path.join(libDir, COMPLETE_MARKER))) return libDir;
  assertOnPath("mvn", "Maven (mvn) is needed to download the Kafka jars from Maven Central");
  note(`downloading Kafka ${KAFKA_VERSION} jars into ${libDir} ...`);
  const started = Date.now();
  // Download next to the final dir and rename it into place, so a half-finished download is never used.
  const partialDir = `${libDir}.partial-${process.pid}`;
  await rm(partialDir, { recursive: true, force: true });
  try {
    await copyDependencies(partialDir);
    const summary = await describeJars(partialDir, Date.now() - started);
    await writeFile(path.join(partialDir, COMPLETE_MARKER), JSON.stringify(summary, null, 2) + "\n");
    await replaceDir(partialDir, libDir);
    note(`${summary.jars} jars, ${(summary.bytes / 1e6).toFixed(1)} MB in ${(summary.ms / 1000).toFixed(1)} s`);
  } finally {
    await rm(partialDir, { recursive: true, force: true });
  }
  return libDir;
}

function kafkaLibDir(): string {
  const root = process.env.KAFKA_LOCAL_CACHE ?? path.join(os.homedir(), ".cache", "mensageiro");
  return path.resolve(root, `kafka-${KAFKA_VERSION}`, "lib");
}

/** Log4j version that Kafka itself ships with (4.0/4.1: 2.24.3, 4.2+: 2.25.3). */
function log4jVersion(): string {
  const [major = 0, minor = 0] = KAFKA_VERSION.split(".").map(Number);
  if (major < 4) throw new Error(`Kafka ${KAFKA_VERSION}: only 4.x is supported (3.x needs reload4j, see pom.xml)`);
  return major === 4 && minor < 2 ? "2.24.3" : "2.25.3";
}

async function copyDependencies(outputDir: string): Promise<void> {
  const args = [
    "-q",
    "-B",
    "-f",
    POM,
    "dependency:copy-dependencies",
    `-DoutputDirectory=${outputDir}`,
    "-DincludeScope=runtime",
    `-Dkafka.version=${KAFKA_VERSION}`,
    `-Dlog4j.version=${log4jVersion()}`,
  ];
  try {
    await run("mvn", args, { maxBuffer: 16 * 1024 * 1024 });
  } catch (error) {
    throw new Error(`mvn ${args.join(" ")} failed:\n${tail(processOutput(error), 30)}`);
  }
}

async function describeJars(libDir: string, ms: number) {
  const jars = (await readdir(libDir)).filter((name) => name.endsWith(".jar"));
  const sizes = await Promise.all(jars.map(async (jar) => (await stat(path.join(libDir, jar))).size));
  const bytes = sizes.reduce((sum, size) => sum + size, 0);
  return { kafkaVersion: KAFKA_VERSION, log4jVersion: log4jVersion(), jars: jars.length, bytes, ms };
}

async function replaceDir(from: string, to: string): Promise<void> {
  await rm(to, { recursive: true, force: true });
  try {
    await rename(from, to);
  } catch (error) {
    // A parallel run finished its download first: theirs is as good as ours.
    if (!existsSync(path.join(to, COMPLETE_MARKER))) throw error;
  }
}

// ---------------------------------------------------------------------------------------------------
// Broker

/** Starts a broker (or reuses $KAFKA_BROKERS) and waits until clients can use it. */
export async function startKafka(opts: StartOptions = {}): Promise<KafkaHandle> {
  const external = process.env.KAFKA_BROKERS;
  if (external) return { brokers: external, stop: async () => {} };

  const libDir = await prepareRuntime();
  const broker = await launchBroker(libDir, await brokerLayout(opts), { removeStateOnStop: !opts.stateDir });
  // A crashed test run must not leave a JVM behind (the CLI's `start` deliberately does).
  const killOnExit = () => signal(broker.pid, "SIGKILL");
  process.once("exit", killOnExit);
  return {
    brokers: broker.brokers,
    stop: async () => {
      process.removeListener("exit", killOnExit);
      await broker.stop();
    },
  };
}

async function brokerLayout(opts: StartOptions): Promise<BrokerLayout> {
  return {
    port: opts.port ?? (await freePort()),
    controllerPort: opts.controllerPort ?? (await freePort()),
    stateDir: opts.stateDir ?? (await mkdtemp(path.join(os.tmpdir(), "mensageiro-kafka-"))),
  };
}

async function launchBroker(libDir: string, layout: BrokerLayout, { removeStateOnStop }: { removeStateOnStop: boolean }): Promise<RunningBroker> {
  const brokers = `127.0.0.1:${layout.port}`;
  let pid: number | undefined;
  const stop = async () => {
    if (pid !== undefined) await stopProcess(pid);
    if (removeStateOnStop) await rm(layout.stateDir, { recursive: true, force: true });
  };
  try {
    await Promise.all([assertPortFree(layout.port), assertPortFree(layout.controllerPort)]);
    const propsFile = await writeServerProperties(layout);
    await formatStorage(libDir, layout, propsFile);
    const logFile = brokerLogFile(layout.stateDir);
    const logOffset = existsSync(logFile) ? (await stat(logFile)).size : 0;
    pid = spawnBroker(libDir, layout, logFile);
    await waitUntilReady({ pid, brokers, logFile, logOffset });
    return { pid, brokers, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Everything a broker start needs before touching ports or state: Java, Maven and the jars. */
async function prepareRuntime(): Promise<string> {
  await checkPrerequisites();
  return ensureKafkaJars();
}

/** Java ≥ 17 (Kafka 4.x brokers and tools) and Maven (jar download). */
async function checkPrerequisites(): Promise<void> {
  const major = await javaMajorVersion();
  if (major === undefined) {
    throw new Error(
      `Java ${MIN_JAVA}+ is required to run Kafka ${KAFKA_VERSION}, but \`${javaBin()} -version\` failed (install a JDK ${MIN_JAVA}+, put it on PATH or set JAVA_HOME)`,
    );
  }
  if (major < MIN_JAVA) throw new Error(`Java ${MIN_JAVA}+ is required to run Kafka ${KAFKA_VERSION}, found Java ${major} (${javaBin()})`);
  assertOnPath("mvn", "Maven (mvn) is required to download the Kafka jars from Maven Central");
}

function javaBin(): string {
  return process.env.JAVA_HOME ? path.join(process.env.JAVA_HOME, "bin", "java") : "java";
}

async function javaMajorVersion(): Promise<number | undefined> {
  try {
    const { stderr } = await run(javaBin(), ["-version"]);
    // `openjdk version "17.0.15"`, or `"1.8.0_392"` for Java 8.
    const version = /version "([^"]+)"/.exec(stderr)?.[1];
    if (!version) return undefined;
    const [first, second] = version.split(".").map((part) => Number.parseInt(part, 10));
    return first === 1 ? second : first;
  } catch {
    return undefined;
  }
}

function assertOnPath(command: string, why: string): void {
  const dirs = (process.env.PATH ?? "").split(path.delimiter).filter(Boolean);
  if (!dirs.some((dir) => existsSync(path.join(dir, command)))) throw new Error(`${why}, but \`${command}\` is not on PATH`);
}

async function writeServerProperties({ port, controllerPort, stateDir }: BrokerLayout): Promise<string> {
  const settings: Record<string, string | number> = {
    "process.roles": "broker,controller",
    "node.id": 1,
    // Static quorum: simplest for one node, and it means `format` must NOT get --standalone.
    "controller.quorum.voters": `1@127.0.0.1:${controllerPort}`,
    listeners: `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
    // IPv4 literal: Node may resolve "localhost" to ::1, and clients follow the advertised address.
    "advertised.listeners": `PLAINTEXT://127.0.0.1:${port}`,
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "log.dirs": path.join(stateDir, "data"),
    // One broker: every replication factor must be 1, or internal topics (and consumer groups) never work.
    "offsets.topic.replication.factor": 1,
    "transaction.state.log.replication.factor": 1,
    "transaction.state.log.min.isr": 1,
    "share.coordinator.state.topic.replication.factor": 1,
    "share.coordinator.state.topic.min.isr": 1,
    "default.replication.factor": 1,
    "min.insync.replicas": 1,
    // One partition per internal topic instead of 50: faster first consumer-group join.
    "offsets.topic.num.partitions": 1,
    "transaction.state.log.num.partitions": 1,
    "share.coordinator.state.topic.num.partitions": 1,
    "num.partitions": 1,
    "auto.create.topics.enable": "true",
    // Tests join groups right away; don't wait 3 s for more members.
    "group.initial.rebalance.delay.ms": 0,
    "num.network.threads": 2,
    "num.io.threads": 4,
    "num.recovery.threads.per.data.dir": 1,
    "background.threads": 4,
  };
  const text = Object.entries(settings)
    .map(([key, value]) => `${key}=${value}`)
    .join("\n");
  await mkdir(path.join(stateDir, "logs"), { recursive: true });
  const file = path.join(stateDir, "server.properties");
  await writeFile(file, `# Written by tools/harness/kafka.ts\n${text}\n`);
  return file;
}

/** KRaft needs formatted storage. A reused state dir keeps its cluster id. */
async function formatStorage(libDir: string, { stateDir }: BrokerLayout, propsFile: string): Promise<void> {
  // --ignore-formatted still verifies the id against meta.properties, so a fresh random id would fail.
  const clusterId = (await formattedClusterId(stateDir)) ?? (await storageTool(libDir, ["random-uuid"])).trim();
  await storageTool(libDir, ["format", "-t", clusterId, "-c", propsFile, "--ignore-formatted"]);
}

async function formattedClusterId(stateDir: string): Promise<string | undefined> {
  const meta = await readFile(path.join(stateDir, "data", "meta.properties"), "utf8").catch(() => "");
  return /^cluster\.id=(\S+)$/m.exec(meta)?.[1];
}

async function storageTool(libDir: string, args: string[]): Promise<string> {
  const jvm = [...TOOL_JVM, `-Dlog4j2.configurationFile=${TOOLS_LOG_CONFIG}`, "-cp", classpath(libDir)];
  try {
    const { stdout } = await run(javaBin(), [...jvm, "kafka.tools.StorageTool", ...args]);
    return stdout;
  } catch (error) {
    throw new Error(`kafka.tools.StorageTool ${args.join(" ")} failed:\n${tail(processOutput(error), 30)}`);
  }
}

/** The JVM expands `dir/*` to every jar in dir; no shell is involved, so nothing else expands it. */
function classpath(libDir: string): string {
  return path.join(libDir, "*");
}

function brokerLogFile(stateDir: string): string {
  return path.join(stateDir, "logs", "broker.log");
}

/** Detached with output in a file, so the broker outlives the CLI that started it. */
function spawnBroker(libDir: string, { stateDir }: BrokerLayout, logFile: string): number {
  const args = [
    ...BROKER_JVM,
    `-Dlog4j2.configurationFile=${BROKER_LOG_CONFIG}`,
    `-Dkafka.logs.dir=${path.join(stateDir, "logs")}`,
    "-cp",
    classpath(libDir),
    "kafka.Kafka",
    path.join(stateDir, "server.properties"),
  ];
  const out = openSync(logFile, "a");
  try {
    const child = spawn(javaBin(), args, { cwd: stateDir, detached: true, stdio: ["ignore", out, out] });
    child.unref();
    if (child.pid === undefined) throw new Error(`could not spawn ${javaBin()}`);
    return child.pid;
  } finally {
    closeSync(out);
  }
}

interface ReadinessProbe {
  pid: number;
  brokers: string;
  logFile: string;
  /** Only log output after this byte counts: a reused state dir keeps older runs' lines. */
  logOffset: number;
}

/**
 * Ready = the broker logged "Kafka Server started", answers a kafkajs describeCluster(), and its group
 * coordinator and producer-id manager are loaded. Without the last two the first consumer group and the
 * first idempotent producer log "coordinator is loading" errors (and a consumer may crash and restart once).
 */
async function waitUntilReady(probe: ReadinessProbe): Promise<void> {
  const state = await waitFor(
    "the broker to serve clients",
    async () => {
      if (!isRunning(probe.pid)) return "exited";
      return logSince(probe).includes(READY_LINE) && (await servesClients(probe.brokers)) ? "ready" : undefined;
    },
    { timeoutMs: READY_TIMEOUT_MS, intervalMs: 250 },
  ).catch(() => "late");
  if (state === "exited") throw brokerError(probe, "the broker process exited during start-up");
  if (state === "late") throw brokerError(probe, `the broker was not ready within ${READY_TIMEOUT_MS / 1000} s`);
}

async function servesClients(brokers: string): Promise<boolean> {
  const client = new Kafka({
    clientId: "kafka-local-probe",
    brokers: [brokers],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 2_000,
    retry: { retries: 0 }, // the caller polls
  });
  const admin = client.admin();
  const producer = client.producer({
    idempotent: true,
    retry: { retries: 1, initialRetryTime: 100 }, // kafkajs refuses an idempotent producer without retries
    // Explicit partitioner: kafkajs warns about the default one only once per process; leave that to the user.
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    // An unknown group is answered as "Dead" once the group coordinator (and __consumer_offsets) is up.
    await admin.describeGroups(["kafka-local-probe"]);
    // An idempotent producer's connect() asks for a producer id.
    await producer.connect();
    return cluster.brokers.length > 0;
  } catch {
    return false;
  } finally {
    await producer.disconnect().catch(() => {});
    await admin.disconnect().catch(() => {});
  }
}

function logSince({ logFile, logOffset }: ReadinessProbe): string {
  try {
    return readFileSync(logFile).subarray(logOffset).toString("utf8");
  } catch {
    return "";
  }
}

function brokerError(probe: ReadinessProbe, what: string): Error {
  return new Error(`Kafka ${KAFKA_VERSION} on ${probe.brokers}: ${what}. Last log lines (${probe.logFile}):\n${tail(logSince(probe), 40)}`);
}

async function stopProcess(pid: number): Promise<void> {
  if (!isRunning(pid)) return;
  signal(pid, "SIGTERM"); // controlled shutdown: flushes logs and the metadata quorum
  const deadline = Date.now() + STOP_GRACE_MS;
  while (isRunning(pid) && Date.now() < deadline) await sleep(100);
  if (isRunning(pid)) {
    signal(pid, "SIGKILL");
    while (isRunning(pid)) await sleep(50);
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

/** Alive and not a zombie: the CLI's broker is re-parented, and a container's PID 1 may never reap it. */
function isRunning(pid: number): boolean {
  try {
    const procStat = readFileSync(`/proc/${pid}/stat`, "utf8"); // "pid (comm) STATE ..."
    const state = procStat.slice(procStat.lastIndexOf(")") + 2)[0];
    return state !== undefined && state !== "Z" && state !== "X";
  } catch {
    if (process.platform === "linux") return false;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------
// Ports and small helpers

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Fails early with a plain message instead of a bind error buried in the broker log. */
function assertPortFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", () => reject(new Error(`127.0.0.1:${port} is already in use (another Kafka broker?)`)));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve()));
  });
}

function processOutput(error: unknown): string {
  const { stdout = "", stderr = "", message = String(error) } = error as { stdout?: string; stderr?: string; message?: string };
  return [stderr, stdout].filter(Boolean).join("\n") || message;
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function note(message: string): void {
  process.stderr.write(`[kafka-local] ${message}\n`);
}

// ---------------------------------------------------------------------------------------------------
// CLI: one long-lived broker for manual work, on the well-known ports, state in .kafka-local/

const CLI_LAYOUT: BrokerLayout = { port: 9092, controllerPort: 9093, stateDir: path.join(REPO_ROOT, ".kafka-local") };
const PID_FILE = path.join(CLI_LAYOUT.stateDir, "broker.pid");
const CLI_BROKERS = `127.0.0.1:${CLI_LAYOUT.port}`;

/** The pid from the pid file, if that process is still our broker (guards against pid reuse). */
async function cliBrokerPid(): Promise<number | undefined> {
  const pid = Number.parseInt(await readFile(PID_FILE, "utf8").catch(() => ""), 10);
  if (!Number.isInteger(pid) || !isRunning(pid)) return undefined;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  return cmdline.includes("kafka.Kafka") && cmdline.includes(CLI_LAYOUT.stateDir) ? pid : undefined;
}

async function cliStart(): Promise<void> {
  if (process.env.KAFKA_BROKERS) {
    note(`KAFKA_BROKERS is set: not starting a broker`);
    console.log(process.env.KAFKA_BROKERS);
    return;
  }
  const running = await cliBrokerPid();
  if (running) {
    note(`already running (pid ${running})`);
    console.log(CLI_BROKERS);
    return;
  }
  const started = Date.now();
  const broker = await launchBroker(await prepareRuntime(), CLI_LAYOUT, { removeStateOnStop: false });
  await writeFile(PID_FILE, `${broker.pid}\n`);
  note(`started pid ${broker.pid} in ${((Date.now() - started) / 1000).toFixed(1)} s; log: ${brokerLogFile(CLI_LAYOUT.stateDir)}`);
  console.log(broker.brokers);
}

async function cliStop(): Promise<void> {
  const pid = await cliBrokerPid();
  if (pid) {
    await stopProcess(pid);
    note(`stopped pid ${pid}`);
  } else {
    note("not running");
  }
  await rm(PID_FILE, { force: true });
}

async function cliStatus(): Promise<number> {
  const pid = await cliBrokerPid();
  if (!pid) {
    console.log("not running");
    return 3; // LSB "program is not running"
  }
  console.log(`running pid ${pid} at ${CLI_BROKERS}${(await servesClients(CLI_BROKERS)) ? "" : " (not answering)"}`);
  return 0;
}

async function runCli(command: string | undefined): Promise<number> {
  switch (command) {
    case "start":
      await cliStart();
      return 0;
    case "stop":
      await cliStop();
      return 0;
    case "status":
      return cliStatus();
    case "fetch":
      console.log(await ensureKafkaJars());
      return 0;
    default:
      console.error("usage: tsx tools/harness/kafka.ts start|stop|status|fetch");
      return 2;
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === import.meta.filename) {
  runCli(process.argv[2]).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : error);
      process.exit(1);
    },
  );
}
