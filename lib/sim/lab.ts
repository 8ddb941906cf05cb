/**
 * The lab: a simulated Talos control plane in a directory (`.lab` by default), driven by
 * `tasks/lab.ts`, `tasks/demo.ts` and the end-to-end tests.
 *
 * - `up`: N nodes (labels 127.0.53.10, .11, … — names only, never contacted), VIP
 *   127.0.53.2, each an etcd member on 127.0.0.1 with its own ports (or the model backend),
 *   and `LAB/bin/talosctl`, the fake talosctl bound to this lab.
 * - `load`: a few thousand writes through the JSON gateway (keep-alive, 8 at a time).
 * - `break`: what the incident did: one member stops early (its copy is older), more writes,
 *   then a CORRUPT alarm: every write fails with `etcdserver: corrupt cluster`, the VIP goes.
 * - `status`, `down` (every process stopped by PID, data dirs removed), `fault` (a node
 *   powered off/on, a copy cut short, a reset that never comes back).
 */

import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { EtcdBackend } from "./backend.ts";
import { backendOf, setClusterFixture } from "./backend_model.ts";
import { fixtureManifest } from "./fixtures.ts";
import { memberHex, tabwrite } from "./format.ts";
import { b64, gw, prefixEnd, unb64 } from "./gateway.ts";
import { ETCDUTL_WRAPPER, KUBECTL_WRAPPER, TALOSCTL_WRAPPER } from "./paths.ts";
import { pickPorts } from "./ports.ts";
import { alive, killHard, startedProcs, stopGracefully, waitGone } from "./proc.ts";
import { damageValue } from "./damage.ts";
import {
  addEvent,
  type Backend,
  dbPath,
  DEFAULT_SPEED,
  type KeyPlan,
  labExists,
  type LabState,
  loadState,
  type NodeState,
  note,
  statePath,
  update,
  withLock,
} from "./state.ts";
import { bootedRunning, fatalLogLine, logTail, markCrashed, primaryVoters, tick } from "./tick.ts";
import { serviceView } from "./talosctl.ts";

/** A refusal or bad usage: nothing was changed. */
export class LabError extends Error {}

export const DEFAULT_VIP = "127.0.53.2";
export const DEFAULT_KEYS = 2000;
export const DEFAULT_LATE_KEYS = 100;
const KEY_PREFIX = "/lab/";

export interface UpOptions {
  nodes?: number;
  backend?: Backend | "auto";
  speed?: number;
  vip?: string;
  log?: (line: string) => void;
}

/** True when `etcd` and `etcdctl` are on PATH. */
export function etcdInstalled(): boolean {
  const path = Deno.env.get("PATH") ?? "";
  return ["etcd", "etcdctl"].every((bin) =>
    path.split(":").some((d) => d !== "" && existsSync(join(d, bin)))
  );
}

export function nodeLabels(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `127.0.53.${10 + i}`);
}

/** `update` on an existing lab; a missing lab is a `LabError`. */
function onLab<T>(dirArg: string, fn: (s: LabState) => Promise<T>): Promise<T> {
  const dir = resolve(dirArg);
  if (!labExists(dir)) throw new LabError(`No lab in ${dir}: start one with "deno task lab up"`);
  return update(dir, fn);
}

/** Processes of the lab that still run (by PID and start time). */
export function runningProcs(dir: string) {
  return startedProcs(dir).filter((p) => alive(p));
}

/** Starts a lab in `dir` (which must be absent, empty, or a lab that is down). */
export async function up(dirArg: string, o: UpOptions = {}): Promise<LabState> {
  const dir = resolve(dirArg);
  const log = o.log ?? (() => {});
  const count = o.nodes ?? 3;
  if (count < 1 || count > 9) throw new LabError(`--nodes must be between 1 and 9, not ${count}`);
  if (labExists(dir)) {
    if (runningProcs(dir).length > 0) {
      throw new LabError(`A lab is already up in ${dir}: run "deno task lab down --dir ${dirArg}"`);
    }
    rmSync(dir, { recursive: true, force: true });
    log(`removed the earlier lab in ${dir} (its out/ too: copies, snapshots, report)`);
  } else if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new LabError(`${dir} exists and is not a lab: choose another --dir`);
  }
  mkdirSync(join(dir, "bin"), { recursive: true });
  const wanted = o.backend ?? "auto";
  const backend: Backend = wanted === "auto" ? (etcdInstalled() ? "etcd" : "model") : wanted;
  if (backend === "etcd" && !etcdInstalled()) {
    throw new LabError(
      "etcd and etcdctl are not on PATH (apt-get install etcd-server etcd-client)",
    );
  }
  const base = backend === "etcd" ? pickPorts(2 * count) : 0;
  const now = Date.now();
  const s: LabState = {
    version: 1,
    dir,
    backend,
    speed: o.speed ?? Number(Deno.env.get("TALOS_SIM_SPEED") || DEFAULT_SPEED),
    vip: o.vip ?? DEFAULT_VIP,
    createdAt: now,
    nodes: nodeLabels(count).map((label, i): NodeState => ({
      label,
      name: `talos-cp-${i + 1}`,
      index: i,
      clientPort: base + 2 * i,
      peerPort: base + 2 * i + 1,
      phase: "running",
      phaseAt: now,
      events: [],
      faults: {},
    })),
    primary: `talos-sim-${now}`,
    voters: { [`talos-sim-${now}`]: count },
    clusters: {},
    log: [],
  };
  if (!(s.speed > 0)) throw new Error(`TALOS_SIM_SPEED must be a positive number`);
  writeFileSync(statePath(dir), JSON.stringify(s));
  writeWrapper(dir);
  writeFileSync(join(dir, "talosconfig"), "# fake talosconfig for the lab (not read)\n");
  await update(dir, async (st) => {
    const be = await backendOf(st);
    log(`starting ${count} ${backend === "etcd" ? "etcd members on 127.0.0.1" : "model members"}`);
    await be.startCluster(st, st.primary);
    for (const n of st.nodes) bootedRunning(st, n, Date.now(), n.proc?.pid ?? 0);
    await tick(st, be);
    note(st, `lab up: ${count} nodes, ${backend} backend, speed ${st.speed}`);
  });
  return loadState(dir);
}

/** `LAB/bin/talosctl` and `LAB/bin/kubectl`: the fakes, bound to this lab. */
function writeWrapper(dir: string) {
  for (const [tool, wrapper] of [["talosctl", TALOSCTL_WRAPPER], ["kubectl", KUBECTL_WRAPPER]]) {
    writeFileSync(
      join(dir, "bin", tool),
      `#!/usr/bin/env bash\n# Fake ${tool} bound to the lab in ${dir} (see lib/sim/${tool}.ts)\n` +
        `export TALOS_SIM_LAB=${shq(dir)}\nexec ${shq(wrapper)} "$@"\n`,
      { mode: 0o755 },
    );
  }
}

/** The environment that points the recovery tasks at this lab's fakes. */
export function labEnv(s: LabState): Record<string, string> {
  const env: Record<string, string> = {
    TALOSCTL: join(s.dir, "bin", "talosctl"),
    KUBECTL: join(s.dir, "bin", "kubectl"),
    // the lab's own (fake) talosconfig: the tasks find one, as on a real workstation
    TALOSCONFIG: join(s.dir, "talosconfig"),
  };
  if (s.backend === "model") env.ETCDUTL = ETCDUTL_WRAPPER;
  return env;
}

function shq(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/** The lines an operator pastes to rehearse each step by hand against this lab. */
export function guide(s: LabState, out = join(s.dir, "out")): string[] {
  const nodes = s.nodes.map((n) => n.label).join(",");
  const env = Object.entries(labEnv(s)).map(([k, v]) => `${k}=${shq(v)}`).join(" ");
  const flags = `--nodes ${nodes} --out ${shq(out)}`;
  return [
    ...["extract", "status", "wipe", "wait", "bootstrap", "disarm", "rejoin"].map((step) =>
      `${env} deno task ${step} ${flags}`
    ),
    `${env} deno task verify ${flags} --vip ${s.vip}`,
    `${env} deno task recover ${flags} --vip ${s.vip}`,
  ];
}

// ---- load / break ----------------------------------------------------------------------

const pad = (i: number) => String(i).padStart(6, "0");

/** The final value of key `i` of a load of `count` keys, or undefined if it was deleted. */
export function expectedValue(i: number, count: number): string | undefined {
  if (i % 10 === 9) return undefined;
  return i < Math.floor(count / 4) ? `v2-${i}-overwritten` : `v1-${i}-${"x".repeat(48)}`;
}

/** Every key the lab wrote before the break, with its value (deleted keys absent). */
export function expectedKeys(plan: KeyPlan): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < plan.count; i++) {
    const v = expectedValue(i, plan.count);
    if (v !== undefined) m.set(`${plan.prefix}k/${pad(i)}`, v);
  }
  for (let j = 0; j < plan.late; j++) m.set(`${plan.prefix}late/${pad(j)}`, `late-${j}`);
  return m;
}

type Op = { put: [string, string] } | { del: string };

async function apply(ports: number[], ops: Op[], concurrency = 16): Promise<void> {
  let next = 0;
  const worker = async (w: number) => {
    while (next < ops.length) {
      const op = ops[next++];
      const port = ports[(w + next) % ports.length];
      const r = "put" in op
        ? await gw(port, "kv/put", { key: b64(op.put[0]), value: b64(op.put[1]) }, 10_000)
        : await gw(port, "kv/deleterange", { key: b64(op.del) }, 10_000);
      if (!r.ok) throw new Error(`write failed on 127.0.0.1:${port}: ${r.error}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
}

/** The client port of the leader among `voters` (writes sent elsewhere are forwarded). */
async function leaderPort(voters: NodeState[]): Promise<number> {
  const st = await gw(voters[0].clientPort, "maintenance/status", {}, 5_000);
  const leader = st.ok ? String(st.body.leader) : "";
  return (voters.find((n) => n.member?.id === leader) ?? voters[0]).clientPort;
}

async function currentRevision(port: number): Promise<number> {
  const r = await gw(port, "kv/range", { key: b64("/lab/"), limit: 1 }, 5_000);
  if (!r.ok) throw new Error(`cannot read the revision: ${r.error}`);
  return Number((r.body.header as { revision: string }).revision);
}

/** Writes `count` keys, overwrites a quarter, deletes a tenth; returns the revision. */
export async function load(dirArg: string, count = DEFAULT_KEYS): Promise<number> {
  return await onLab(dirArg, async (s) => {
    const be = await backendOf(s);
    await tick(s, be);
    const voters = primaryVoters(s, be);
    if (voters.length === 0) throw new Error("No running etcd member to write to");
    if (s.backend === "model") {
      const fx = fixtureManifest();
      setClusterFixture(s, s.primary, "loaded.db");
      s.keys = { ...fx.keys, late: 0 };
      note(s, `load: model backend, db files are fixtures/sim/loaded.db (${fx.keys.count} keys)`);
      return s.clusters[s.primary].revision;
    }
    const ports = [await leaderPort(voters)];
    const ops: Op[][] = [[], [], []];
    for (let i = 0; i < count; i++) {
      ops[0].push({ put: [`${KEY_PREFIX}k/${pad(i)}`, `v1-${i}-${"x".repeat(48)}`] });
    }
    for (let i = 0; i < Math.floor(count / 4); i++) {
      ops[1].push({ put: [`${KEY_PREFIX}k/${pad(i)}`, `v2-${i}-overwritten`] });
    }
    for (let i = 9; i < count; i += 10) ops[2].push({ del: `${KEY_PREFIX}k/${pad(i)}` });
    for (const batch of ops) await apply(ports, batch);
    s.keys = { prefix: KEY_PREFIX, count, late: 0 };
    const rev = await currentRevision(ports[0]);
    note(s, `load: ${count} keys written (revision ${rev})`);
    return rev;
  });
}

/** How `break` breaks the lab (`--mode`); `incident` is the default. */
export const BREAK_MODES = ["incident", "bad-member", "nospace", "quorum-lost"] as const;
export type BreakMode = typeof BREAK_MODES[number];

/** What `break` did. */
export interface Broken {
  mode: BreakMode;
  /** The node it broke (the member stopped early, the bad member, the one that filled up). */
  stopped: string;
  /** The member (decimal) the alarm names, or "" without an alarm. */
  alarmMember: string;
  /** The revision when it broke. */
  revision: number;
}

/**
 * Breaks the lab the way `mode` says:
 * - `incident` (default): member 1 stops early, more writes, then a CORRUPT alarm
 * - `bad-member`: the last member's db has a value damaged on disk; it refuses to start
 * - `nospace`: the second member's quota is small; writes fill it until etcd raises NOSPACE
 * - `quorum-lost`: every member but the last stops: no leader
 */
export async function breakCluster(
  dirArg: string,
  late = DEFAULT_LATE_KEYS,
  mode: BreakMode = "incident",
): Promise<Broken> {
  return await onLab(dirArg, async (s) => {
    const be = await backendOf(s);
    await tick(s, be);
    if (!s.keys) throw new LabError("Nothing loaded yet: run load first");
    if (s.broken) throw new LabError("The lab is already broken");
    if (mode !== "incident") {
      if (s.nodes.length < 3) throw new LabError(`--mode ${mode} needs at least 3 nodes`);
      const broken = await breakBy[mode](s, be);
      s.broken = broken;
      await tick(s, be);
      return broken;
    }
    const stopped = s.nodes[0];
    const now = Date.now();
    if (s.backend === "etcd") await stopGracefully(stopped.proc);
    await be.stop(s, stopped, true);
    crash(s, stopped, now);
    let broken: Broken;
    if (s.backend === "model") {
      const fx = fixtureManifest();
      setClusterFixture(s, s.primary, "late.db");
      s.clusters[s.primary].alarms = fx.files["late.db"].alarms.map((a) => ({ ...a }));
      s.keys = { ...s.keys, late: fx.keys.late };
      broken = {
        mode,
        stopped: stopped.label,
        alarmMember: fx.files["late.db"].alarms[0].memberID,
        revision: fx.files["late.db"].revision,
      };
    } else {
      const ports = [await leaderPort(primaryVoters(s, be))];
      const ops: Op[] = [];
      for (let j = 0; j < late; j++) {
        ops.push({ put: [`${KEY_PREFIX}late/${pad(j)}`, `late-${j}`] });
      }
      await apply(ports, ops);
      s.keys = { ...s.keys, late };
      const alarmMember = s.nodes[s.nodes.length - 1].member!.id;
      const r = await gw(ports[0], "maintenance/alarm", {
        action: "ACTIVATE",
        memberID: alarmMember,
        alarm: "CORRUPT",
      });
      if (!r.ok) throw new Error(`Cannot raise the alarm: ${r.error}`);
      // etcd commits its backend every 100 ms: wait so the alarm is inside every db file.
      await new Promise((res) => setTimeout(res, 400));
      const w = await gw(ports[0], "kv/put", { key: b64("/lab/probe"), value: b64("x") });
      if (w.ok || !w.error.includes("corrupt cluster")) {
        throw new Error(`Writes still work after the alarm: ${JSON.stringify(w)}`);
      }
      broken = {
        mode,
        stopped: stopped.label,
        alarmMember,
        revision: await currentRevision(ports[0]),
      };
    }
    s.broken = broken;
    await tick(s, be);
    note(
      s,
      `break: ${stopped.label} stopped early; CORRUPT alarm on ${memberHex(broken.alarmMember)}`,
    );
    return broken;
  });
}

/** One line saying what `break` did, for the operator. */
export function brokenText(b: Broken): string {
  switch (b.mode) {
    case "incident":
      return `${b.stopped} stopped early; CORRUPT alarm raised (revision ${b.revision}); ` +
        `writes now fail with "etcdserver: corrupt cluster"`;
    case "bad-member":
      return `a value in ${b.stopped}'s db damaged on disk; its etcd refuses to start ` +
        `("found data inconsistency with peers"); the others keep quorum (revision ${b.revision})`;
    case "nospace":
      return `${b.stopped} filled its small quota: NOSPACE alarm raised by etcd on member ` +
        `${memberHex(b.alarmMember)}; writes fail with "etcdserver: mvcc: database space exceeded"`;
    case "quorum-lost":
      return `every member but the last stopped: no leader (revision ${b.revision})`;
  }
}

function crash(s: LabState, n: NodeState, now: number) {
  markCrashed(s, n, now, "etcd stopped");
}

const MiB = 1024 * 1024;
/** The value written until NOSPACE (etcd's request limit is 1.5 MiB). */
const FILL_VALUE_BYTES = 256 * 1024;
/** A key outside the lab's key plan, overwritten until the quota is full. */
export const FILL_KEY = "/nospace/fill";

/** Polls `fn` every 100 ms until it is true, or fails naming `what`. */
async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs = 15_000) {
  const until = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The real etcd's initial corruption check, as etcd 3.5 prints it when it exits (what the
 * model backend shows instead of running etcd; reference sample
 * `talosctl-triage/service-etcd.crashloop-corrupt-check.txt`).
 */
export function corruptCheckLog(memberHex: string, at: number): string {
  return JSON.stringify({
    level: "fatal",
    ts: new Date(at).toISOString(),
    caller: "etcdmain/etcd.go:183",
    msg: "discovery failed",
    error: `${memberHex} found data inconsistency with peers`,
    stacktrace: "go.etcd.io/etcd/server/v3/etcdmain.startEtcdOrProxyV2\n\t" +
      "go.etcd.io/etcd/server/v3/etcdmain/etcd.go:183\ngo.etcd.io/etcd/server/v3/etcdmain.Main" +
      "\n\tgo.etcd.io/etcd/server/v3/etcdmain/main.go:40\nmain.main\n\t" +
      "go.etcd.io/etcd/server/v3/main.go:31\nruntime.main\n\truntime/proc.go:285",
  });
}

const breakBy: Record<
  Exclude<BreakMode, "incident">,
  (s: LabState, be: EtcdBackend) => Promise<Broken>
> = {
  /** The last member stops, a value of its db is damaged on disk, it starts again: refused. */
  async "bad-member"(s, be) {
    const bad = s.nodes[s.nodes.length - 1];
    const revision = s.backend === "etcd"
      ? await currentRevision(await leaderPort(primaryVoters(s, be)))
      : s.clusters[s.primary].revision;
    if (s.backend === "etcd") await stopGracefully(bad.proc);
    await be.stop(s, bad, true);
    const d = damageValue(dbPath(s.dir, bad.label));
    note(s, `break: ${bad.label}: ${d.bytes} bytes of a value flipped at offset ${d.offset}`);
    const at = Date.now();
    const pid = await be.restart(s, bad);
    addEvent(bad, at, "Running", `Started task etcd (PID ${pid}) for container etcd`);
    let last: string;
    if (s.backend === "etcd") {
      if (!(await waitGone(bad.proc, 20_000))) {
        throw new Error(
          `etcd of ${bad.label} started on its damaged db: the initial corruption check did not refuse it`,
        );
      }
      // the refusal, wherever zap flushed it among the last lines (not always the very last)
      const tail = logTail(s, bad, 20);
      const refusal = tail.findLast((l) =>
        /^\{"level":"(fatal|panic)"/.test(l) && l.includes("found data inconsistency with peers")
      );
      if (!refusal) {
        throw new Error(
          `etcd of ${bad.label} exited, but not by its corruption check: ${
            fatalLogLine(s, bad) ?? tail.slice(-3).join("\n")
          }`,
        );
      }
      last = refusal;
    } else {
      await be.stop(s, bad, true);
      last = corruptCheckLog(memberHex(bad.member!.id), Date.now());
    }
    markCrashed(
      s,
      bad,
      Date.now(),
      "etcd refused to start: found data inconsistency with peers",
      last,
    );
    return { mode: "bad-member", stopped: bad.label, alarmMember: "", revision };
  },

  /** The second member gets a small quota (its etcd restarted), writes until etcd says NOSPACE. */
  async nospace(s, be) {
    const n = s.nodes[1];
    if (s.backend === "model") {
      const c = s.clusters[s.primary];
      c.alarms.push({ memberID: n.member!.id, alarm: "NOSPACE" });
      note(s, `break: NOSPACE alarm on ${memberHex(n.member!.id)} (model)`);
      return { mode: "nospace", stopped: n.label, alarmMember: n.member!.id, revision: c.revision };
    }
    const st = await be.status(s, n);
    if (!st.ok) throw new Error(`Cannot read the db size of ${n.label}: ${st.error}`);
    n.quotaBytes = (Math.ceil(st.value.dbSize / MiB) + 4) * MiB;
    await stopGracefully(n.proc);
    const pid = await be.restart(s, n);
    bootedRunning(s, n, Date.now(), pid);
    await waitFor(`${n.label} to follow a leader again`, async () => {
      const x = await be.status(s, n);
      return x.ok && x.value.leader !== "0";
    });
    const port = await leaderPort(primaryVoters(s, be));
    const value = "ZmZm".repeat(Math.floor(FILL_VALUE_BYTES / 3)); // "fff…", base64
    let full = "";
    for (let i = 0; i < 1000 && !full; i++) {
      const w = await gw(port, "kv/put", { key: b64(FILL_KEY), value }, 10_000);
      if (!w.ok) {
        if (!/database space exceeded/.test(w.error)) throw new Error(`write failed: ${w.error}`);
        full = w.error;
      }
    }
    if (!full) throw new Error(`${n.label} never filled its quota of ${n.quotaBytes} bytes`);
    let alarmMember = "";
    await waitFor("etcd to raise NOSPACE", async () => {
      const a = await be.alarms(s, n);
      alarmMember = a.ok ? a.value.find((x) => x.alarm === "NOSPACE")?.memberID ?? "" : "";
      return alarmMember !== "";
    });
    const revision = await currentRevision(port);
    // what kube-apiserver does every 5 minutes: history compacted, so a defrag frees it
    const c = await gw(port, "kv/compaction", { revision: String(revision), physical: true });
    if (!c.ok) throw new Error(`Cannot compact: ${c.error}`);
    note(s, `break: ${n.label} quota ${n.quotaBytes} bytes; NOSPACE raised by etcd (${full})`);
    return { mode: "nospace", stopped: n.label, alarmMember, revision };
  },

  /** Every member but the last stops: the survivor has no leader. */
  async "quorum-lost"(s, be) {
    const survivor = s.nodes[s.nodes.length - 1];
    const revision = s.backend === "etcd"
      ? await currentRevision(await leaderPort(primaryVoters(s, be)))
      : s.clusters[s.primary].revision;
    const stopped = s.nodes.slice(0, -1);
    for (const n of stopped) {
      if (s.backend === "etcd") await stopGracefully(n.proc);
      await be.stop(s, n, true);
      crash(s, n, Date.now());
    }
    await waitFor(`${survivor.label} to lose its leader`, async () => {
      const x = await be.status(s, survivor);
      return x.ok && /^0*$/.test(x.value.leader);
    });
    note(s, `break: ${stopped.map((n) => n.label).join(", ")} stopped: no leader`);
    return { mode: "quorum-lost", stopped: stopped[0].label, alarmMember: "", revision };
  },
};

// ---- faults ------------------------------------------------------------------------------

export const FAULTS = [
  "off",
  "on",
  "crash-on-copy",
  "short-copy",
  "torn-copy",
  "stuck-reset",
  "join-gave-up",
  "clear",
] as const;
export type Fault = typeof FAULTS[number];

/**
 * - `off`: the node is powered off (unreachable; its etcd killed), `on`: it boots again
 * - `crash-on-copy`: its next `cp` finds it crashing: the copy fails, the node reboots
 * - `short-copy`: its next `cp` writes half the file and fails; `torn-copy`: same, exit 0
 * - `stuck-reset`: after its next reset it never comes back; `clear`: no faults
 * - `join-gave-up`: its next join loop gives up (Talos' 30 min join timeout): once the seed
 *   could take it as a learner, its etcd is Failed; a reboot makes it join again
 */
export async function fault(dirArg: string, label: string, kind: Fault): Promise<void> {
  await onLab(dirArg, async (s) => {
    const be = await backendOf(s);
    await tick(s, be);
    const n = s.nodes.find((x) => x.label === label);
    if (!n) throw new LabError(`No node "${label}" in the lab`);
    const now = Date.now();
    if (kind === "off") {
      await be.stop(s, n, true);
      n.phase = "off";
      n.phaseAt = now;
      if (s.vipHolder === n.label) s.vipHolder = undefined;
    } else if (kind === "on") {
      if (n.phase === "off") {
        n.phase = "down";
        n.bootAt = now;
      }
    } else if (kind === "crash-on-copy") n.faults.crashOnCopy = true;
    else if (kind === "short-copy") n.faults.shortCopy = "error";
    else if (kind === "torn-copy") n.faults.shortCopy = "silent";
    else if (kind === "stuck-reset") n.faults.stuckReset = true;
    else if (kind === "join-gave-up") n.faults.joinGaveUp = true;
    else n.faults = {};
    await tick(s, be);
    note(s, `fault ${kind} on ${label}`);
  });
}

// ---- status / down -----------------------------------------------------------------------

/** A human summary of the lab (after advancing it to now). */
export async function status(dirArg: string): Promise<string> {
  const dir = resolve(dirArg);
  return await onLab(dir, async (s) => {
    const be = await backendOf(s);
    await tick(s, be);
    let alarms = "";
    const via = primaryVoters(s, be)[0];
    if (via) {
      const a = await be.alarms(s, via);
      alarms = a.ok
        ? (a.value.map((x) => `${x.alarm} on ${memberHex(x.memberID)}`).join(", ") || "none")
        : `unknown (${a.error})`;
    }
    let text = "NODE\tNAME\tETCD\tHEALTH\tPID\tMEMBER\tLEARNER\tCLIENT PORT\tVIP\n";
    for (const n of s.nodes) {
      const v = serviceView(n);
      text += [
        n.label,
        n.name,
        ["down", "off"].includes(n.phase)
          ? `(${n.phase === "down" ? "rebooting" : "off"})`
          : v.state,
        v.health + (v.healthMessage ? ` (${v.healthMessage})` : ""),
        be.running(s, n) ? n.proc?.pid ?? "" : "-",
        n.member ? memberHex(n.member.id) : "-",
        n.member ? n.member.learner : "-",
        s.backend === "etcd" ? n.clientPort : "-",
        s.vipHolder === n.label ? s.vip : "",
      ].join("\t") + "\n";
    }
    const head = `lab ${dir}: ${s.backend} backend, speed ${s.speed}x, ${s.nodes.length} nodes, ` +
      `VIP ${s.vip} ${s.vipHolder ? `on ${s.vipHolder}` : "not held"}, alarms: ${alarms || "-"}\n`;
    const keys = s.keys
      ? `keys: ${s.keys.count} loaded under ${s.keys.prefix}, ${s.keys.late} late` +
        (s.broken
          ? `; broken (${s.broken.mode ?? "incident"}) at revision ${s.broken.revision}`
          : "") +
        "\n"
      : "";
    return head + keys + tabwrite(text) + "recent:\n" +
      s.log.slice(-8).map((l) => `  ${l}\n`).join("");
  });
}

/** Stops every process of the lab by PID and removes the member data. Safe to repeat. */
export async function down(dirArg: string): Promise<number> {
  const dir = resolve(dirArg);
  if (!existsSync(dir)) return 0;
  let stopped = 0;
  const stop = async () => {
    for (const p of runningProcs(dir)) {
      await killHard(p);
      stopped++;
    }
  };
  if (labExists(dir)) {
    await withLock(dir, async () => {
      await stop();
      const s = loadState(dir);
      for (const n of s.nodes) {
        n.proc = undefined;
        n.phase = "off";
      }
      s.vipHolder = undefined;
      note(s, `lab down: ${stopped} processes stopped`);
      writeFileSync(statePath(dir), JSON.stringify(s, null, 1));
      rmSync(join(dir, "nodes"), { recursive: true, force: true });
    });
  } else await stop();
  return stopped;
}

// ---- proof (demo, tests) -------------------------------------------------------------------

export interface Check {
  name: string;
  /** The check was made and holds. */
  ok: boolean;
  /** The check could not be made (the model backend keeps no keys): neither ok nor failed. */
  notChecked?: true;
  detail: string;
}

/** How the demo shows a check: `ok`, `FAIL`, or `not checked` (never shown as ok). */
export function checkMark(c: Check): string {
  return c.ok ? "ok         " : c.notChecked ? "not checked" : "FAIL       ";
}

/** What the demo proves after a recovery; `seedRevision` is the revision of the seed's copy. */
export async function prove(dirArg: string, seedRevision?: number): Promise<Check[]> {
  return await onLab(dirArg, async (s) => {
    const be: EtcdBackend = await backendOf(s);
    await tick(s, be);
    const checks: Check[] = [];
    const add = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
    const voters = primaryVoters(s, be);
    const seed = voters[0];
    if (!seed) {
      add("a restored member runs", false, "no running voter in the restored cluster");
      return checks;
    }
    const expectedRev = seedRevision ?? s.broken?.revision;
    if (s.backend === "etcd") {
      const rev = await currentRevision(seed.clientPort);
      add(
        "restored revision equals the seed copy's",
        rev === expectedRev,
        `revision ${rev}, seed copy ${expectedRev ?? "unknown"}`,
      );
      const plan = s.keys!;
      const want = expectedKeys(plan);
      const r = await gw(seed.clientPort, "kv/range", {
        key: b64(plan.prefix),
        range_end: prefixEnd(plan.prefix),
      }, 10_000);
      const got = new Map<string, string>();
      if (r.ok) {
        for (const kv of (r.body.kvs ?? []) as { key: string; value?: string }[]) {
          got.set(unb64(kv.key), unb64(kv.value ?? ""));
        }
      }
      const missing = [...want].filter(([k, v]) => got.get(k) !== v);
      const extra = [...got.keys()].filter((k) => !want.has(k));
      add(
        "every key written before the break reads back with its value",
        r.ok && missing.length === 0 && extra.length === 0,
        r.ok
          ? `${want.size} keys checked, ${missing.length} missing or wrong` +
            (missing[0] ? ` (first: ${missing[0][0]})` : "") + `, ${extra.length} unexpected`
          : r.error,
      );
      const w = await gw(seed.clientPort, "kv/put", {
        key: b64("/lab/after-recovery"),
        value: b64("ok"),
      });
      add(
        "writes work",
        w.ok,
        w.ok ? `put at revision ${(w.body.header as { revision: string }).revision}` : w.error,
      );
    } else {
      const c = s.clusters[s.primary];
      add(
        "restored revision equals the seed copy's",
        c.revision === expectedRev,
        `revision ${c.revision} (model), seed copy ${expectedRev ?? "unknown"}`,
      );
      checks.push({
        name: "every key written before the break reads back with its value",
        ok: false,
        notChecked: true,
        detail: "the model backend keeps no keys (run with real etcd to check them)",
      });
      const a = await be.alarms(s, seed);
      add("writes work", a.ok && a.value.length === 0, a.ok ? "no alarm (model)" : a.error);
    }
    await memberChecks(s, be, seed, add);
    return checks;
  });
}

// ---- proof of a fix in place (replace, nospace): nothing restarted, nothing lost ------------

/** The etcd PID of every node whose member runs now (what a fix in place must not change). */
export async function memberPids(dirArg: string): Promise<Record<string, number>> {
  return await onLab(dirArg, async (s) => {
    const be = await backendOf(s);
    await tick(s, be);
    const pids: Record<string, number> = {};
    for (const n of primaryVoters(s, be)) pids[n.label] = n.proc!.pid;
    return pids;
  });
}

/** Keys written while a fix runs, and how to stop writing. */
export interface Writer {
  /** Stops writing; the keys etcd acknowledged, with their values. */
  stop(): Promise<Map<string, string>>;
}

/**
 * Writes `/lab/during/NNNNNN` one at a time, round robin to the members of `nodes` (real
 * etcd only; the model keeps no keys), until stopped; a write that fails is not counted.
 */
export function startWriter(dirArg: string, nodes: string[]): Writer {
  const s = loadState(resolve(dirArg));
  const ports = s.nodes.filter((n) => nodes.includes(n.label)).map((n) => n.clientPort);
  const written = new Map<string, string>();
  let stopped = false;
  const loop = (async () => {
    if (s.backend !== "etcd" || ports.length === 0) return;
    for (let i = 0; !stopped; i++) {
      const key = `${KEY_PREFIX}during/${pad(i)}`;
      const value = `during-${i}`;
      const r = await gw(ports[i % ports.length], "kv/put", { key: b64(key), value: b64(value) });
      if (r.ok) written.set(key, value);
      await new Promise((res) => setTimeout(res, 25));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return written;
    },
  };
}

/**
 * What the demo and the tests prove after a fix in place (`replace`, nospace): every key
 * written before the break and `during` the fix reads back on every member; the members in
 * `pidsBefore` but not `replaced` run with the same etcd PID (never restarted); writes
 * work; every member votes; no alarm; the VIP is held.
 */
export async function proveInPlace(
  dirArg: string,
  o: { pidsBefore: Record<string, number>; replaced: string[]; during: Map<string, string> },
): Promise<Check[]> {
  return await onLab(dirArg, async (s) => {
    const be: EtcdBackend = await backendOf(s);
    await tick(s, be);
    const checks: Check[] = [];
    const add = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
    const voters = primaryVoters(s, be);
    if (voters.length === 0) {
      add("etcd runs", false, "no running voter");
      return checks;
    }
    const keysCheck = "every key written before the break and during the fix reads back";
    if (s.backend === "etcd") {
      const want = new Map([...expectedKeys(s.keys!), ...o.during]);
      const bad: string[] = [];
      for (const n of voters) {
        const r = await gw(n.clientPort, "kv/range", {
          key: b64(s.keys!.prefix),
          range_end: prefixEnd(s.keys!.prefix),
        }, 10_000);
        if (!r.ok) {
          bad.push(`${n.label}: ${r.error}`);
          continue;
        }
        const got = new Map<string, string>();
        for (const kv of (r.body.kvs ?? []) as { key: string; value?: string }[]) {
          got.set(unb64(kv.key), unb64(kv.value ?? ""));
        }
        const missing = [...want].filter(([k, v]) => got.get(k) !== v);
        if (missing.length > 0) {
          bad.push(`${n.label}: ${missing.length} missing or wrong (first: ${missing[0][0]})`);
        }
      }
      add(
        keysCheck,
        bad.length === 0,
        bad.length === 0
          ? `${want.size} keys (${o.during.size} written during the fix) on each of ` +
            voters.map((n) => n.label).join(", ")
          : bad.join("; "),
      );
      const w = await gw(voters[0].clientPort, "kv/put", {
        key: b64(`${KEY_PREFIX}after-fix`),
        value: b64("ok"),
      });
      add("writes work", w.ok, w.ok ? `put on ${voters[0].label}` : w.error);
    } else {
      checks.push({
        name: keysCheck,
        ok: false,
        notChecked: true,
        detail: "the model backend keeps no keys (run with real etcd to check them)",
      });
      const a = await be.alarms(s, voters[0]);
      add("writes work", a.ok && a.value.length === 0, a.ok ? "no alarm (model)" : a.error);
    }
    const kept = Object.entries(o.pidsBefore).filter(([label]) => !o.replaced.includes(label));
    const restarted = kept.filter(([label, pid]) => {
      const n = s.nodes.find((x) => x.label === label)!;
      return n.proc?.pid !== pid || !be.running(s, n);
    });
    add(
      o.replaced.length > 0 ? "the healthy members never restarted" : "no member restarted",
      kept.length > 0 && restarted.length === 0,
      restarted.length === 0
        ? kept.map(([label, pid]) => `${label} etcd PID ${pid}`).join(", ")
        : `restarted: ${restarted.map(([l]) => l).join(", ")}`,
    );
    await memberChecks(s, be, voters[0], add);
    return checks;
  });
}

async function memberChecks(
  s: LabState,
  be: EtcdBackend,
  via: NodeState,
  add: (name: string, ok: boolean, detail: string) => void,
) {
  const m = await be.members(s, via);
  const list = m.ok ? m.value : [];
  const learners = list.filter((x) => x.learner).length;
  const unnamed = list.filter((x) => !x.name).length;
  add(
    "all members vote",
    m.ok && list.length === s.nodes.length && learners === 0 && unnamed === 0,
    m.ok ? `${list.length} members, ${learners} learners, ${unnamed} not started` : m.error,
  );
  const a = await be.alarms(s, via);
  add("no alarms", a.ok && a.value.length === 0, a.ok ? `${a.value.length} alarms` : a.error);
  add("the VIP is held", s.vipHolder !== undefined, `VIP ${s.vip} on ${s.vipHolder ?? "nobody"}`);
}
