/**
 * Benchmark of the native db reader against `etcdctl snapshot status` on a ~256 MB db made by
 * a real etcd on 127.0.0.1. Prints figures; it is not a test.
 *
 * The db is generated once into DIR (default `<repo>/.bench/`, gitignored) and reused:
 * 100 KB values in transactions of 10 puts plus small keys in transactions of 128, some
 * overwritten and deleted, sent over keep-alive fetch to etcd's JSON gateway. etcd is stopped by
 * its PID even when generation fails. Each measurement runs in a fresh process, so its peak RSS
 * (GNU time's %M, or VmHWM without it) is the reader's own.
 *
 * Then, unless skipped: the CRC-32C in MB/s, `status` on three
 * copies of that db against etcdctl on the same files (bench/status_bench.ts), and the lab's
 * time to recovery against the lower bound of its own delays (bench/recovery_bench.ts).
 *
 * Targets: readRevision() under 50 ms; a readStatus() call no slower than an etcdctl process
 * (what the tool would otherwise spawn); peak RSS under 150 MB; status on three copies no
 * slower than etcdctl on them; recover within 1.3 times the lab's lower bound.
 *
 * Usage: deno run -A bench/etcd_db_bench.ts [--dir DIR] [--size-mb 256] [--runs 5] [--fresh]
 *          [--skip-status] [--skip-lab] [--lab-speed 20] [--lab-nodes 3]
 *          [--lab-backend auto|etcd|model]
 */

import { readHistorySpan, readRevision, readStatus } from "../lib/db/etcd_db.ts";
import { COMPARE_CRC } from "../lib/db/reader.ts";
import { formatStatusJson } from "../lib/db/etcd_db_format.ts";
import { humanizeBytes } from "../lib/run/humanize.ts";
import { crc32cUpdate } from "../lib/db/crc32c.ts";
import { crc32Update } from "../lib/db/crc32.ts";
import { benchStatus } from "./status_bench.ts";
import { benchRecovery } from "./recovery_bench.ts";

// The measured child imports only the reader; the etcd helpers (and node: modules) are loaded
// by the parent alone, so the child's start-up is the reader's own.
type Lab = typeof import("../scripts/gen_db_fixtures.ts");
const lab = (): Promise<Lab> => import("../scripts/gen_db_fixtures.ts");

/** Gitignored, in the repository whatever the working directory. */
const DEFAULT_DIR = new URL("../.bench", import.meta.url).pathname;
const BIG_VALUE_BYTES = 100_000;
const SMALL_VALUE_BYTES = 600;
/** Share of the target size written as small keys (the rest as 100 KB values). */
const SMALL_SHARE = 0.15;

interface Args {
  dir: string;
  sizeMb: number;
  runs: number;
  fresh: boolean;
  skipStatus: boolean;
  skipLab: boolean;
  labSpeed: number;
  labNodes: number;
  labBackend: "auto" | "etcd" | "model";
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    dir: DEFAULT_DIR,
    sizeMb: 256,
    runs: 5,
    fresh: false,
    skipStatus: false,
    skipLab: false,
    labSpeed: 20,
    labNodes: 3,
    labBackend: "auto",
  };
  const positive = (flag: string, value: string | undefined) => {
    const n = Number(value);
    if (!(n > 0)) throw new Error(`${flag} must be a positive number, not "${value}"`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === "--fresh") args.fresh = true;
    else if (flag === "--dir") args.dir = argv[++i];
    else if (flag === "--size-mb") args.sizeMb = positive(flag, argv[++i]);
    else if (flag === "--runs") args.runs = positive(flag, argv[++i]);
    else if (flag === "--skip-status") args.skipStatus = true;
    else if (flag === "--skip-lab") args.skipLab = true;
    else if (flag === "--lab-speed") args.labSpeed = positive(flag, argv[++i]);
    else if (flag === "--lab-nodes") args.labNodes = positive(flag, argv[++i]);
    else if (flag === "--lab-backend") {
      const b = argv[++i];
      if (b !== "auto" && b !== "etcd" && b !== "model") {
        throw new Error(`--lab-backend must be auto, etcd or model, not "${b}"`);
      }
      args.labBackend = b;
    } else throw new Error(`Unknown flag "${flag}"`);
  }
  return args;
}

/** CRC-32C throughput over 64 MiB, median of 7, in MB/s. */
function crcSpeed(fn: (crc: number, data: Uint8Array) => number): number {
  const data = new Uint8Array(64 << 20);
  for (let i = 0; i < data.length; i += 4096) data[i] = i >>> 12;
  fn(0, data);
  const speeds: number[] = [];
  for (let i = 0; i < 7; i++) {
    const start = performance.now();
    fn(0, data);
    speeds.push(data.length / 1e6 / ((performance.now() - start) / 1000));
  }
  return median(speeds);
}

/** Writes about `sizeMb` MB into a fresh etcd and copies its db to `out`. */
async function generate(dir: string, sizeMb: number, out: string): Promise<void> {
  const { COMMIT_WAIT_MS, copyDb, sleep, startEtcd } = await lab();
  const work = `${dir}/etcd`;
  await Deno.remove(work, { recursive: true }).catch(() => {});
  const etcd = await startEtcd(work, {
    name: "bench",
    token: "bench",
    ports: "free",
    args: ["--quota-backend-bytes", String(8 * 1024 ** 3)],
  });
  console.error(`==> Generating a ~${sizeMb} MB db with etcd on ${etcd.url}`);
  try {
    const gw = etcd.gateway;
    const target = sizeMb * 1_000_000;
    const big = new Uint8Array(BIG_VALUE_BYTES);
    const small = new Uint8Array(SMALL_VALUE_BYTES).fill(0x73);
    let n = 0;
    const smallKeys = Math.floor((target * SMALL_SHARE) / (SMALL_VALUE_BYTES + 120));
    for (let i = 0; i < smallKeys; i += 128) {
      const batch: [string, Uint8Array][] = [];
      for (let j = i; j < Math.min(i + 128, smallKeys); j++) {
        batch.push([`/registry/pods/ns-${j % 97}/pod-${j}`, small]);
      }
      await gw.putMany(batch);
    }
    for (let i = 0; i < smallKeys; i += 7) await gw.del(`/registry/pods/ns-${i % 97}/pod-${i}`);
    while (Deno.statSync(etcd.dbPath).size < target) {
      const batch: [string, Uint8Array][] = [];
      for (let j = 0; j < 10; j++, n++) {
        big.fill(n & 0xff);
        batch.push([`/registry/configmaps/big-${n % 2000}`, big.slice()]);
      }
      await gw.putMany(batch);
      if (n % 500 === 0) await sleep(COMMIT_WAIT_MS); // let the backend commit and grow the file
    }
    await copyDb(etcd.dbPath, out);
  } finally {
    await etcd.stop();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

/** Peak RSS of this process (VmHWM), in bytes; reading /proc/self needs -A in Deno. */
function peakRss(): number {
  try {
    const m = Deno.readTextFileSync("/proc/self/status").match(/VmHWM:\s+(\d+) kB/);
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Child mode: one measurement in a fresh process, printed as JSON. */
async function child(what: string, path: string): Promise<void> {
  const start = performance.now();
  // "status": what status reads of a copy (the history hash over everything, with the CRC
  // status compares with); "etcd-status": etcdctl's figures, its CRC-32C hash too.
  const history = async () => {
    const span = await readHistorySpan(path);
    const r = await readStatus(path, {
      history: { uptoRevision: span.revision, sinceRevision: span.compactRevision },
      historyCrc: COMPARE_CRC,
    });
    return { revision: r.revision, history: r.history?.hash };
  };
  const result = what === "revision"
    ? { revision: await readRevision(path) }
    : what === "status"
    ? await history()
    : { json: formatStatusJson(await readStatus(path, { etcdHash: true }), "3.4") };
  const ms = performance.now() - start;
  console.log(JSON.stringify({ ms, rss: peakRss(), ...result }));
}

interface Run {
  /** Time inside the process (the call), or undefined for etcdctl. */
  ms?: number;
  /** Whole process, start to exit. */
  wallMs: number;
  /** CPU time of the whole process (user + system, all threads), NaN without GNU time. */
  cpuMs: number;
  /** Peak RSS in bytes (GNU time's %M, or the child's VmHWM). */
  rss: number;
  out: string;
}

const HAVE_TIME = exists("/usr/bin/time");

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Runs argv, under GNU time when present (for peak RSS); returns stdout, wall time, RSS. */
async function timed(argv: string[], env?: Record<string, string>) {
  const start = performance.now();
  const out = await new Deno.Command(HAVE_TIME ? "/usr/bin/time" : argv[0], {
    args: HAVE_TIME ? ["-f", "%M %U %S", ...argv] : argv.slice(1),
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const wallMs = performance.now() - start;
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${argv.join(" ")} failed: ${stderr}`);
  const [kb, user, sys] = HAVE_TIME
    ? stderr.trim().split("\n").at(-1)!.split(" ").map(Number)
    : [NaN, NaN, NaN];
  return {
    stdout: new TextDecoder().decode(out.stdout),
    wallMs,
    cpuMs: (user + sys) * 1000,
    rss: kb * 1024,
  };
}

async function runChild(what: string, path: string): Promise<Run> {
  const argv = [Deno.execPath(), "run", "-A", import.meta.filename!, "--child", what, path];
  const t = await timed(argv);
  const r = JSON.parse(t.stdout);
  return {
    ms: r.ms,
    wallMs: t.wallMs,
    cpuMs: t.cpuMs,
    rss: Number.isNaN(t.rss) ? r.rss : t.rss,
    out: r.json ?? String(r.revision),
  };
}

async function runEtcdctl(path: string): Promise<Run> {
  const t = await timed(["etcdctl", "snapshot", "status", path, "-w", "json"], {
    ETCDCTL_API: "3",
  });
  return { wallMs: t.wallMs, cpuMs: t.cpuMs, rss: t.rss, out: t.stdout };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
const ms = (x: number) => (x < 10 ? `${x.toFixed(2)} ms` : `${x.toFixed(0)} ms`);

async function main(argv: string[]): Promise<void> {
  if (argv[0] === "--child") return child(argv[1], argv[2]);
  const args = parseArgs(argv);
  Deno.mkdirSync(args.dir, { recursive: true });
  const db = `${args.dir}/bench.db`;
  (await lab()).stopOnSignal();
  if (args.fresh || !exists(db)) await generate(args.dir, args.sizeMb, db);
  else console.error(`==> Reusing ${db} (--fresh to make it again)`);

  const runs = async (fn: () => Promise<Run>) => {
    const list: Run[] = [];
    for (let i = 0; i < args.runs; i++) list.push(await fn());
    return list;
  };
  // One warm-up each, so every run reads from the page cache.
  await runChild("status", db);
  await runEtcdctl(db);
  const rev = await runs(() => runChild("revision", db));
  // Interleaved, so a slow spell of a shared machine hits both sides alike.
  const status: Run[] = [];
  const etcdStatus: Run[] = [];
  const ctl: Run[] = [];
  for (let i = 0; i < args.runs; i++) {
    status.push(await runChild("status", db));
    etcdStatus.push(await runChild("etcd-status", db));
    ctl.push(await runEtcdctl(db));
  }
  const same = etcdStatus.every((r) => r.out === ctl[0].out);

  const size = Deno.statSync(db).size;
  const fig = (list: Run[]) => ({
    ms: list[0].ms === undefined ? undefined : median(list.map((r) => r.ms!)),
    wall: median(list.map((r) => r.wallMs)),
    cpu: median(list.map((r) => r.cpuMs)),
    rss: Math.max(...list.map((r) => r.rss)),
  });
  const cpu = (x: number) => (Number.isNaN(x) ? "?" : ms(x));
  const [r, s, e, c] = [fig(rev), fig(status), fig(etcdStatus), fig(ctl)];
  const rows = [
    ["", "call", "process", "process CPU", "peak RSS"],
    ["readRevision()", ms(r.ms!), ms(r.wall), cpu(r.cpu), mb(r.rss)],
    ["readStatus() as status reads", ms(s.ms!), ms(s.wall), cpu(s.cpu), mb(s.rss)],
    ["readStatus() + etcdctl's hash", ms(e.ms!), ms(e.wall), cpu(e.cpu), mb(e.rss)],
    ["etcdctl snapshot status", "", ms(c.wall), cpu(c.cpu), Number.isNaN(c.rss) ? "?" : mb(c.rss)],
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  console.log(`db: ${db}, ${humanizeBytes(size)} (${size} bytes), median of ${args.runs} runs`);
  const load = Deno.loadavg()[0];
  console.log(`load average ${load.toFixed(2)} on ${navigator.hardwareConcurrency} CPUs`);
  console.log(`status: ${ctl[0].out.trim()}`);
  for (const row of rows) {
    console.log(
      row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join(
        "   ",
      ),
    );
  }
  console.log(
    `etcdctl process / readStatus() call: ${(c.wall / s.ms!).toFixed(2)}x; ` +
      `/ readStatus() process (Deno start-up included): ${(c.wall / s.wall).toFixed(2)}x`,
  );
  console.log(`readStatus output (with etcdctl's hash) equals etcdctl's: ${same}`);
  // The tool calls the reader in its own process, where etcdctl would be a process of its own.
  const verdicts = [
    [`readRevision() under 50 ms`, r.ms! < 50],
    [`readStatus() call no slower than an etcdctl process`, s.ms! <= c.wall],
    [`peak RSS under 150 MB`, Math.max(r.rss, s.rss, e.rss) < 150 * 1024 * 1024],
  ] as const;
  const more: [string, boolean][] = [];
  console.log(
    `crc32c: ${crcSpeed(crc32cUpdate).toFixed(0)} MB/s (slicing-by-16, over 64 MiB); ` +
      `crc32: ${
        crcSpeed(crc32Update).toFixed(0)
      } MB/s (native zlib, what copies are compared with)`,
  );
  if (!args.skipStatus) {
    const ratio = await benchStatus(args.dir, db, args.runs, timedRun);
    more.push([`status on three copies no slower than etcdctl on them`, ratio <= 1]);
  }
  if (!args.skipLab) {
    const lab = await benchRecovery(`${args.dir}/lab`, {
      nodes: args.labNodes,
      speed: args.labSpeed,
      backend: args.labBackend,
    });
    more.push([`recover exits 0 on the lab`, lab.code === 0]);
    more.push([`recover within 1.3x the lab's lower bound`, lab.recoverMs <= 1.3 * lab.boundMs]);
  }
  for (const [what, ok] of [...verdicts, ...more]) console.log(`${ok ? "ok  " : "MISS"} ${what}`);
}

/** `timed` as the status bench wants it. */
async function timedRun(argv: string[], env?: Record<string, string>) {
  const t = await timed(argv, env);
  return { wallMs: t.wallMs, cpuMs: t.cpuMs, rss: t.rss };
}

if (import.meta.main) await main(Deno.args);
