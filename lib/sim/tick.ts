/**
 * The control plane's clock. Nothing runs between two talosctl calls: every call first
 * brings the lab up to "now" from the timestamps in the state — boot events that became
 * due, a restore that is due, the join loop of waiting nodes (one learner at a time, once
 * the seed runs and accepts writes), promotions, health checks, the VIP — then answers.
 *
 * Event texts and their order are Talos v1.13's (`reference/talos.md` §2); delays are a
 * real cluster's (`TIMELINE`) divided by the lab's speed.
 */

import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { EtcdBackend } from "./backend.ts";
import {
  addEvent,
  dataDir,
  hasData,
  HEALTH_TIMEOUT_MS,
  type LabState,
  type NodeState,
  note,
  scaled,
} from "./state.ts";

export const EV = {
  starting: ["Starting", "Starting service"],
  waitingAll: [
    "Waiting",
    'Waiting for volumes /var/lib, ETCD to be mounted, service "cri" to be "up", time sync, ' +
    "network, etcd spec",
  ],
  waitingCriTime: [
    "Waiting",
    'Waiting for service "cri" to be "up", time sync, network, etcd spec',
  ],
  waitingCri: ["Waiting", 'Waiting for service "cri" to be "up"'],
  pre: ["Preparing", "Running pre state"],
  runner: ["Preparing", "Creating service runner"],
} as const;

function ev(n: NodeState, at: number, e: readonly [string, string]): void {
  addEvent(n, at, e[0], e[1]);
}

function started(n: NodeState, at: number, pid: number): void {
  addEvent(n, at, "Running", `Started task etcd (PID ${pid}) for container etcd`);
}

/** Puts `n` in Running after its member started at `at`: health unknown until the first check. */
function toRunning(s: LabState, n: NodeState, at: number, pid: number): void {
  ev(n, at, EV.runner);
  started(n, at, pid);
  n.phase = "running";
  n.phaseAt = at;
  n.health = undefined;
  n.healthPending = true;
  n.healthTroubleSince = undefined;
  n.nextHealthAt = at + scaled(s, "healthDelayS");
  if (n.member?.learner) n.nextPromoteAt = at + scaled(s, "promoteFirstS");
}

/** A node that booted and started its member at `at` (lab up): the whole history at once. */
export function bootedRunning(s: LabState, n: NodeState, at: number, pid: number): void {
  freshRunner(n, at);
  ev(n, at, EV.waitingCriTime);
  ev(n, at, EV.waitingCri);
  ev(n, at, EV.pre);
  toRunning(s, n, at, pid);
  n.nextHealthAt = at;
}

/** Records the fresh boot history of a runner started at `at` (a reboot or a bootstrap). */
export function freshRunner(n: NodeState, at: number): void {
  n.events = [];
  ev(n, at, EV.starting);
  ev(n, at, EV.waitingAll);
}

/** Advances everything to `now`. */
export async function tick(s: LabState, be: EtcdBackend, now = Date.now()): Promise<void> {
  for (const n of s.nodes) await advanceNode(s, be, n, now);
  const writable = await primaryAcceptsWrites(s, be);
  await promoteLearners(s, be, now);
  if (writable) await joinOne(s, be, now);
  await checkHealth(s, be, now);
  electVip(s, writable);
}

/**
 * etcd on `n` stopped: containerd restarts it forever, health fails, the lab notes `why`.
 * `lastLog`: the fatal line etcd ended with (exit code 1), which Talos shows with `%q`.
 */
export function markCrashed(
  s: LabState,
  n: NodeState,
  now: number,
  why: string,
  lastLog?: string,
): void {
  n.phase = "crashed";
  n.phaseAt = now;
  addEvent(
    n,
    now,
    "Waiting",
    'Error running Containerd(etcd), going to restart forever: task "etcd" failed: ' +
      (lastLog === undefined ? "exit code 2" : `exit code 1 (last log ${JSON.stringify(lastLog)})`),
  );
  n.health = { ok: false, message: "service not running" };
  n.healthPending = false;
  note(s, `${n.label}: ${why}`);
}

async function advanceNode(s: LabState, be: EtcdBackend, n: NodeState, now: number) {
  if (n.phase === "running" && !be.running(s, n)) {
    const fatal = fatalLogLine(s, n);
    markCrashed(s, n, now, fatal ? `etcd exited: ${fatal.slice(0, 200)}` : "etcd exited", fatal);
  }
  if (n.phase === "down" && n.bootAt !== undefined && now >= n.bootAt) {
    if (n.faults.stuckReset) {
      n.phase = "off";
      n.phaseAt = n.bootAt;
      note(s, `${n.label}: did not come back after its reset (fault stuck-reset)`);
      return;
    }
    n.phase = "booting";
    n.phaseAt = n.bootAt;
    n.bootStep = 0;
    n.health = undefined;
    n.healthPending = false;
    freshRunner(n, n.bootAt);
  }
  if (n.phase === "booting") await boot(s, be, n, now);
  if (n.phase === "restoring" && n.restoreAt !== undefined && now >= n.restoreAt) {
    await restore(s, be, n, n.restoreAt);
  }
}

/** Boot steps after the node is reachable again, each at its offset from `phaseAt`. */
async function boot(s: LabState, be: EtcdBackend, n: NodeState, now: number) {
  const t0 = n.phaseAt;
  const steps: [number, () => Promise<void> | void][] = [
    [
      scaled(s, "volumesMountedS"),
      () => ev(n, t0 + scaled(s, "volumesMountedS"), EV.waitingCriTime),
    ],
    [scaled(s, "timeSyncedS"), () => ev(n, t0 + scaled(s, "timeSyncedS"), EV.waitingCri)],
    [scaled(s, "criUpS"), () => {
      const at = t0 + scaled(s, "criUpS");
      ev(n, at, EV.pre);
      if (!hasData(s.dir, n.label)) {
        n.phase = "preparing";
        n.phaseAt = at;
        n.nextJoinAt = at;
      }
    }],
    [scaled(s, "criUpS") + scaled(s, "restartPreS"), async () => {
      const at = t0 + scaled(s, "criUpS") + scaled(s, "restartPreS");
      try {
        const pid = await be.restart(s, n);
        toRunning(s, n, at, pid);
        note(s, `${n.label}: etcd restarted on its data (PID ${pid})`);
      } catch (error) {
        n.phase = "failed";
        n.phaseAt = at;
        addEvent(n, at, "Failed", `Failed to start etcd: ${errorText(error)}`);
      }
    }],
  ];
  while (n.phase === "booting" && (n.bootStep ?? 0) < steps.length) {
    const [offset, action] = steps[n.bootStep ?? 0];
    if (now < t0 + offset) break;
    n.bootStep = (n.bootStep ?? 0) + 1;
    await action();
  }
}

async function restore(s: LabState, be: EtcdBackend, n: NodeState, at: number) {
  const r = n.restore!;
  const token = `talos-sim-${at}`;
  const result = await be.restore(s, n, r.snapshot, r.skipHashCheck, token)
    .catch((error) => ({ error: errorText(error) }));
  n.restoreAt = undefined;
  if ("error" in result) {
    n.phase = "failed";
    n.phaseAt = at;
    addEvent(
      n,
      at,
      "Failed",
      `Failed to run pre stage: error recovering from the snapshot: ${result.error}`,
    );
    note(s, `${n.label}: restore failed: ${result.error}`);
    return;
  }
  s.primary = token;
  s.seed = n.label;
  s.voters[token] = 1;
  if (r.snapshot) rmSync(r.snapshot, { force: true });
  toRunning(s, n, at, result.pid);
  note(s, `${n.label}: restored from the snapshot, etcd runs alone (PID ${result.pid})`);
}

/** Running voters of the primary cluster, in node order. */
export function primaryVoters(s: LabState, be: EtcdBackend): NodeState[] {
  return s.nodes.filter((n) =>
    n.phase === "running" && n.member?.cluster === s.primary && !n.member.learner &&
    be.running(s, n)
  );
}

/** A majority of the cluster's voters runs (else every request through raft hangs). */
export function hasQuorum(s: LabState, be: EtcdBackend, token: string): boolean {
  const running =
    s.nodes.filter((n) =>
      n.member?.cluster === token && !n.member.learner && n.phase === "running" && be.running(s, n)
    ).length;
  return running * 2 > (s.voters[token] ?? 0);
}

/** The primary cluster runs and has no alarm (a CORRUPT alarm makes every write fail). */
async function primaryAcceptsWrites(s: LabState, be: EtcdBackend): Promise<boolean> {
  if (!hasQuorum(s, be, s.primary)) return false;
  for (const via of primaryVoters(s, be)) {
    const a = await be.alarms(s, via);
    if (a.ok) return a.value.length === 0;
  }
  return false;
}

async function promoteLearners(s: LabState, be: EtcdBackend, now: number) {
  const via = primaryVoters(s, be)[0];
  if (!via) return;
  for (const n of s.nodes) {
    if (n.phase !== "running" || n.member?.cluster !== s.primary || !n.member.learner) continue;
    if (n.nextPromoteAt === undefined || now < n.nextPromoteAt) continue;
    const err = await be.promote(s, n, via);
    if (err === undefined) {
      n.member.learner = false;
      s.voters[n.member.cluster] = (s.voters[n.member.cluster] ?? 0) + 1;
      n.nextPromoteAt = undefined;
      n.nextHealthAt = Math.min(n.nextHealthAt ?? now, now);
      note(s, `${n.label}: promoted to voter`);
    } else {
      n.nextPromoteAt = now + scaled(s, "promoteRetryS");
    }
  }
}

/**
 * What Talos v1.13 shows once `buildInitialCluster` gave up (`retry.Constant(EtcdJoinTimeout =
 * 30m, 3 s units)`; go-retry's error set ends with `timeout`): the pre stage failed, the
 * service is Failed and not restarted; the message holds a newline and a tab.
 */
export const JOIN_GAVE_UP = "Failed to run pre stage: failed to build initial etcd cluster: " +
  "failed to build cluster arguments: 1 error(s) occurred:\n\ttimeout";

/** The join loop of waiting nodes: at most one learner in the cluster at a time. */
async function joinOne(s: LabState, be: EtcdBackend, now: number) {
  const via = primaryVoters(s, be)[0];
  if (!via) return;
  for (const n of s.nodes.filter((x) => x.phase === "preparing" && x.faults.joinGaveUp)) {
    n.faults.joinGaveUp = false;
    n.phase = "failed";
    n.phaseAt = now;
    n.nextJoinAt = undefined;
    addEvent(n, now, "Failed", JOIN_GAVE_UP);
    note(s, `${n.label}: its join loop gave up (fault join-gave-up): etcd Failed`);
  }
  if (s.nodes.some((n) => n.member?.cluster === s.primary && n.member.learner)) return;
  const n = s.nodes.find((x) =>
    x.phase === "preparing" && x.nextJoinAt !== undefined && now >= x.nextJoinAt
  );
  if (!n) return;
  const r = await be.join(s, n, via).catch((error) => ({ error: errorText(error) }));
  if ("error" in r) {
    n.nextJoinAt = now + scaled(s, "joinRetryS");
    note(s, `${n.label}: join refused: ${r.error}`);
    return;
  }
  toRunning(s, n, now, r.pid);
  note(s, `${n.label}: joined as learner (PID ${r.pid})`);
}

async function checkHealth(s: LabState, be: EtcdBackend, now: number) {
  const due = s.nodes.filter((n) =>
    n.phase === "running" && n.nextHealthAt !== undefined && now >= n.nextHealthAt
  );
  await Promise.all(due.map(async (n) => {
    const h = n.member && !n.member.learner && !hasQuorum(s, be, n.member.cluster)
      ? { ok: false as const, message: "context deadline exceeded", transient: true }
      : await be.health(s, n);
    const period = scaled(s, "healthPeriodS");
    if (!h.ok && h.transient) {
      // A real check waits up to 15 s for an answer; only then does it fail.
      n.healthTroubleSince ??= now;
      if (now - n.healthTroubleSince < HEALTH_TIMEOUT_MS) return;
    }
    const message = h.ok ? "" : h.message;
    const changed = n.healthPending || !n.health || n.health.ok !== h.ok ||
      n.health.message !== message;
    if (changed) {
      addEvent(
        n,
        now,
        "Running",
        h.ok ? "Health check successful" : `Health check failed: ${message}`,
      );
    }
    n.health = { ok: h.ok, message };
    n.healthPending = false;
    n.healthTroubleSince = undefined;
    n.nextHealthAt = now + period;
  }));
}

/** One healthy voter of a writable primary cluster holds the VIP; it keeps it while it can. */
function electVip(s: LabState, writable: boolean) {
  const eligible = (n: NodeState) =>
    writable && n.phase === "running" && n.health?.ok === true &&
    n.member?.cluster === s.primary && !n.member.learner;
  const holder = s.nodes.find((n) => n.label === s.vipHolder);
  if (holder && eligible(holder)) return;
  const next = s.nodes.find(eligible);
  if (next?.label !== s.vipHolder) {
    note(s, next ? `VIP ${s.vip} moves to ${next.label}` : `VIP ${s.vip} released`);
  }
  s.vipHolder = next?.label;
}

/** The last line of the node's etcd log when it is etcd's own fatal exit (zap `fatal`). */
export function fatalLogLine(s: LabState, n: NodeState): string | undefined {
  const last = logTail(s, n, 1)[0] ?? "";
  return /^\{"level":"(fatal|panic)"/.test(last) ? last : undefined;
}

/** The last `count` lines of a node's etcd log (none when it has no log). */
export function logTail(s: LabState, n: NodeState, count: number): string[] {
  const file = join(s.dir, "logs", `${n.label}.log`);
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8").trimEnd().split("\n").slice(-count);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ---- actions the talosctl calls start -------------------------------------------------

/** `reset --system-labels-to-wipe EPHEMERAL --graceful=false --reboot`: kill, wipe, reboot. */
export async function resetNode(s: LabState, be: EtcdBackend, n: NodeState, now: number) {
  await be.stop(s, n, true);
  rmSync(dataDir(s.dir, n.label), { recursive: true, force: true });
  n.member = undefined;
  n.health = undefined;
  n.healthPending = false;
  n.restore = undefined;
  n.restoreAt = undefined;
  n.nextJoinAt = undefined;
  n.nextPromoteAt = undefined;
  n.nextHealthAt = undefined;
  n.phase = "down";
  n.phaseAt = now;
  n.bootAt = now + scaled(s, "resetDownS");
  if (s.vipHolder === n.label) s.vipHolder = undefined;
  note(s, `${n.label}: reset (EPHEMERAL wiped), rebooting`);
}

/** `reboot`: etcd is stopped (SIGTERM), the node is away for a while, data stays. */
export async function rebootNode(s: LabState, be: EtcdBackend, n: NodeState, now: number) {
  await be.stop(s, n, false);
  n.health = undefined;
  n.healthPending = false;
  n.nextHealthAt = undefined;
  n.restoreAt = undefined;
  n.phase = "down";
  n.phaseAt = now;
  n.bootAt = now + scaled(s, "rebootDownS");
  if (s.vipHolder === n.label) s.vipHolder = undefined;
  note(s, `${n.label}: rebooting`);
}

/** Bootstrap accepted: a new etcd runner whose pre stage restores `snapshot`. */
export function startBootstrap(
  s: LabState,
  n: NodeState,
  snapshot: string,
  skipHashCheck: boolean,
  now: number,
) {
  // The old runner (and its history, ending in "[Finished]: Bootstrap requested") is
  // replaced by a new one: `service etcd` shows a fresh history.
  freshRunner(n, now);
  ev(n, now, EV.pre);
  n.phase = "restoring";
  n.phaseAt = now;
  n.nextJoinAt = undefined;
  n.restore = { snapshot, skipHashCheck };
  n.restoreAt = now + scaled(s, "restoreS");
  note(s, `${n.label}: bootstrap requested (recover, skip hash check: ${skipHashCheck})`);
}
