/**
 * The simulated control plane's state: one JSON file in the lab directory, read and written
 * under an exclusive `flock` (the tasks call the fake talosctl for several nodes at the same
 * instant). Nothing runs between calls: each call first advances the state to "now" from
 * the timestamps stored here (see `tick.ts`).
 */

import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { SimEvent } from "./format.ts";
import type { Proc } from "./proc.ts";

/** Which etcd backs the lab: real processes on 127.0.0.1, or the in-state model. */
export type Backend = "etcd" | "model";

/**
 * - `running`: etcd runs (STATE Running)
 * - `crashed`: etcd died and is not coming back (STATE Waiting, HEALTH Fail)
 * - `down`: rebooting, unreachable until `bootAt`
 * - `off`: unreachable until the lab heals it
 * - `booting`: reachable, etcd Waiting for its conditions (events appear over time)
 * - `preparing`: etcd in its pre state: join loop, or waiting for bootstrap
 * - `restoring`: bootstrap accepted, the restore runs at `restoreAt`
 * - `failed`: the pre stage failed (STATE Failed)
 */
export type Phase =
  | "running"
  | "crashed"
  | "down"
  | "off"
  | "booting"
  | "preparing"
  | "restoring"
  | "failed";

export interface Member {
  /** Decimal member ID (etcd's JSON gateway writes uint64 as strings). */
  id: string;
  /** Token of the cluster the member belongs to. */
  cluster: string;
  learner: boolean;
}

export interface Health {
  ok: boolean;
  message: string;
}

export interface Faults {
  /** `cp` writes half the file and fails (`error`) or exits 0 (`silent`). */
  shortCopy?: "error" | "silent";
  /** The next `cp` finds the node crashing: it reboots, the copy fails. */
  crashOnCopy?: boolean;
  /** The next reset never comes back (the node stays unreachable). */
  stuckReset?: boolean;
  /**
   * Its next join loop gives up (as after Talos' 30 min `EtcdJoinTimeout`): once the seed
   * could take it, its etcd is Failed instead of joining. Cleared when it fires.
   */
  joinGaveUp?: boolean;
}

export interface NodeState {
  label: string;
  /** Member name and hostname, `talos-cp-N`. */
  name: string;
  index: number;
  clientPort: number;
  peerPort: number;
  phase: Phase;
  /** When the current phase began (ms). */
  phaseAt: number;
  /** `down`: when the node boots again. */
  bootAt?: number;
  /** `booting`: which boot events were already recorded. */
  bootStep?: number;
  /** Events of the current service runner, oldest first. */
  events: SimEvent[];
  /** undefined = unknown (`?`). */
  health?: Health;
  /** `Unknown` right after the checker starts, until the first check. */
  healthPending?: boolean;
  nextHealthAt?: number;
  /** First transient failure of the current check (the real check waits up to 15 s). */
  healthTroubleSince?: number;
  proc?: Proc;
  member?: Member;
  nextJoinAt?: number;
  nextPromoteAt?: number;
  restoreAt?: number;
  restore?: { snapshot: string; skipHashCheck: boolean };
  faults: Faults;
  /** `--quota-backend-bytes` of this node's etcd (lab break --mode nospace), if set. */
  quotaBytes?: number;
}

/** Timings of a real cluster, in real-cluster seconds; divided by `speed` when used. */
export const TIMELINE = {
  resetDownS: 60,
  rebootDownS: 45,
  volumesMountedS: 1,
  timeSyncedS: 3,
  criUpS: 6,
  restartPreS: 1,
  restoreS: 3,
  healthDelayS: 5,
  healthPeriodS: 20,
  joinRetryS: 5,
  promoteFirstS: 10,
  promoteRetryS: 15,
  /** `etcd alarm list` without a leader: clientv3 retries its 7 s timeout ~100 times. */
  alarmNoLeaderS: 720,
} as const;

/** A real health check gives up after 15 s of etcd's own (unscaled) time. */
export const HEALTH_TIMEOUT_MS = 15_000;

export const DEFAULT_SPEED = 20;

export interface KeyPlan {
  prefix: string;
  count: number;
  /** Keys `prefix/late/…` written by `break` while one member was already stopped. */
  late: number;
}

export interface ModelCluster {
  members: { id: string; node: string; name: string; learner: boolean }[];
  alarms: { memberID: string; alarm: string }[];
  revision: number;
  raftIndex: number;
  raftTerm: number;
  leader: string;
  /** Fixture the cluster's db files are copies of. */
  fixture: string;
}

export interface LabState {
  version: 1;
  dir: string;
  backend: Backend;
  speed: number;
  vip: string;
  createdAt: number;
  nodes: NodeState[];
  /** Token of the cluster new members join (the last one bootstrapped). */
  primary: string;
  vipHolder?: string;
  /** The node the last successful restore ran on. */
  seed?: string;
  keys?: KeyPlan;
  /** What `break` did: the member stopped early and the member the alarm names. */
  broken?: {
    mode?: "incident" | "bad-member" | "nospace" | "quorum-lost";
    stopped: string;
    alarmMember: string;
    revision: number;
  };
  /** Voting members each cluster has in etcd's member list (dead ones included). */
  voters: Record<string, number>;
  /** Model backend only: clusters by token. */
  clusters: Record<string, ModelCluster>;
  /** Worker nodes, for `deno task after` (`after.ts`; added on first use). */
  workers?: SimWorker[];
  /** The lab's pods, for `deno task after` (`after.ts`; added on first use). */
  pods?: SimPod[];
  /** Free-form history of what the lab did, for `lab status` and post-mortems. */
  log: string[];
}

export function statePath(dir: string): string {
  return join(dir, "state.json");
}

export function nodeDir(dir: string, label: string): string {
  return join(dir, "nodes", label);
}

/** The node's `/var/lib/etcd`. */
export function dataDir(dir: string, label: string): string {
  return join(nodeDir(dir, label), "etcd");
}

/** The node's `/var/lib/etcd/member/snap/db`. */
export function dbPath(dir: string, label: string): string {
  return join(dataDir(dir, label), "member", "snap", "db");
}

export function hasData(dir: string, label: string): boolean {
  try {
    return Deno.readDirSync(dataDir(dir, label)).next().done === false;
  } catch {
    return false;
  }
}

export function labExists(dir: string): boolean {
  return existsSync(statePath(dir));
}

export function loadState(dir: string): LabState {
  return JSON.parse(readFileSync(statePath(dir), "utf8"));
}

export function saveState(s: LabState): void {
  const tmp = statePath(s.dir) + ".tmp";
  writeFileSync(tmp, JSON.stringify(s, null, 1));
  renameSync(tmp, statePath(s.dir));
}

/** Runs `fn` holding the lab's exclusive lock (flock on `state.lock`). */
export async function withLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  mkdirSync(dir, { recursive: true });
  const file = await Deno.open(join(dir, "state.lock"), { create: true, write: true });
  try {
    await file.lock(true);
    return await fn();
  } finally {
    file.close();
  }
}

/** Loads, lets `fn` change the state, saves; all under the lock. */
export function update<T>(dir: string, fn: (s: LabState) => Promise<T>): Promise<T> {
  return withLock(dir, async () => {
    const s = loadState(dir);
    try {
      return await fn(s);
    } finally {
      saveState(s);
    }
  });
}

/** Milliseconds of a real-cluster delay at the lab's speed. */
export function scaled(s: LabState, key: keyof typeof TIMELINE): number {
  return (TIMELINE[key] * 1000) / s.speed;
}

export function addEvent(n: NodeState, at: number, state: string, msg: string): void {
  n.events.push({ at, state, msg });
  if (n.events.length > 64) n.events.splice(0, n.events.length - 64);
}

export function note(s: LabState, text: string): void {
  s.log.push(`${new Date().toISOString()} ${text}`);
  if (s.log.length > 400) s.log.splice(0, s.log.length - 400);
}

export function findNode(s: LabState, label: string): NodeState | undefined {
  return s.nodes.find((n) => n.label === label);
}

/** Reachable through apid: anything but rebooting or powered off. */
export function reachable(n: NodeState): boolean {
  return n.phase !== "down" && n.phase !== "off";
}

export interface SimWorker {
  label: string;
  name: string;
  /** Every kubelet restart: when it was asked, and when the kubelet runs again (ms). */
  restarts: { at: number; upAt: number }[];
}

export interface SimPod {
  namespace: string;
  name: string;
  node: string;
  phase: string;
  ready: boolean;
  /** A waiting container's reason, when not ready. */
  waiting?: string;
  owner?: { kind: string; name: string };
  createdAt: number;
  /** A volume event: reason and message. */
  volumeEvent?: { reason: string; message: string; at: number };
}
