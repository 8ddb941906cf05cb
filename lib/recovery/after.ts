/**
 * After the restore: the mechanics of `deno task after` (and of the end of `recover`).
 *
 * 1. A verified backup: `etcd snapshot` on a healthy member into OUT, read back natively
 *    (intact, its sha256 trailer right, revision at least the restored one, no alarm inside),
 *    0600, recorded in the manifest with its sha256.
 * 2. The workers' kubelets: found with `kubectl get nodes -o wide` (else `talosctl get
 *    members` on a control-plane node), restarted one at a time, each waited for until it runs
 *    again (and its node is Ready) before the next. Never a control-plane node.
 * 3. Stuck workloads: `kubectl get pods -A -o json` and `get events -A -o json`, grouped by
 *    reason, with the command that restarts each; only pods a controller recreates are ever
 *    deleted.
 *
 * Every part is journaled (`after:snapshot`, `after:kubelet:W`, `after:pod:NS/NAME`): a re-run
 * keeps a verified backup, never restarts a kubelet twice, never deletes a pod twice.
 */

import { createHash } from "node:crypto";
import { chmodSync, existsSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { type Ctx, step } from "../run/context.ts";
import {
  CommandError,
  DeadlineError,
  RecoveryError,
  RefusedError,
  StepError,
} from "../run/errors.ts";
import { describe, lookAtEtcd, SERVICE_POLL_MS } from "../talos/cluster.ts";
import { Journal } from "../run/journal.ts";
import { type BackupRecord, readManifest, writeManifest } from "./manifest.ts";
import { sha256File } from "../db/sha256.ts";
import {
  isKubeReady,
  isUnreachable,
  parseKubeNodes,
  parsePodEvents,
  parsePods,
  parseServiceInfo,
  parseSnapshotSaved,
  parseTalosMembers,
  type PodEvent,
  type PodInfo,
} from "../talos/parse.ts";
import { runCommand, type RunResult, shellLine, tail } from "../run/command.ts";
import { poll } from "../run/poll.ts";
import { readProgress } from "./resume.ts";
import { commandFailure, talos, talosArgv } from "../talos/talosctl.ts";
import { EtcdDbError } from "../db/etcd_db.ts";
import { taskCommand } from "./main.ts";
import { confirm } from "./confirm.ts";
import { kubeletOkPlan, talosPlan, waitForPlan } from "../talos/plan.ts";

/** The step around the whole after part: done once backup, kubelets and pods are. */
export const AFTER_STEP = "after";
export const SNAPSHOT_STEP = "after:snapshot";
export const kubeletStep = (worker: string) => `after:kubelet:${worker}`;
export const podStep = (ns: string, name: string) => `after:pod:${ns}/${name}`;

/** Deadline of one `etcd snapshot` (a large db over a slow link). */
export const SNAPSHOT_TIMEOUT_MS = 15 * 60_000;
/** Deadline of one kubectl call. */
export const KUBECTL_CALL_MS = 60_000;
/** Events that say a pod waits for its storage. */
export const VOLUME_REASONS =
  /^(FailedMount|FailedAttachVolume|FailedMapVolume|FailedUnMount|FailedDetachVolume|FailedBinding|ProvisioningFailed|VolumeFailed\w*)$/;

export const afterSub = {
  snapshot: (path: string) => ["etcd", "snapshot", path],
  kubeletRestart: () => ["service", "kubelet", "restart"],
  serviceKubelet: () => ["service", "kubelet"],
  members: () => ["get", "members"],
};

// ---- what this OUT already did ---------------------------------------------------------

/** `after:` steps done, and kubelet restarts accepted, since the last accepted wipe. */
export function afterProgress(
  out: string,
): { done: Set<string>; restarted: Set<string>; cutOff: Set<string> } {
  const done = new Set<string>();
  const restarted = new Set<string>();
  /** Workers whose restart was sent but cut off before talosctl answered (Ctrl-C). */
  const cutOff = new Set<string>();
  for (const e of Journal.readAll(out)) {
    if (e.type === "call" && e.step === "wipe" && e.mutating && e.exitCode === 0) {
      done.clear(); // a new wipe: what was done after the last restore is history
      restarted.clear();
      cutOff.clear();
    }
    if (e.type === "step" && e.event === "ok" && e.step.startsWith("after:")) done.add(e.step);
    if (
      e.type === "call" && e.step.startsWith("after:kubelet:") && e.mutating && e.exitCode === 0
    ) restarted.add(e.node);
    if (
      e.type === "call" && e.step.startsWith("after:kubelet:") && e.mutating &&
      (e.exitCode === null || e.exitCode === undefined)
    ) cutOff.add(e.node);
  }
  return { done, restarted, cutOff };
}

/** The revision of the copy the seed was restored from, when this OUT's journal recorded it. */
export function restoredRevision(out: string, seed: string | undefined): number | undefined {
  let revision: number | undefined;
  for (const e of Journal.readAll(out)) {
    if (e.type !== "fact" || e.key !== "copies" || !Array.isArray(e.value)) continue;
    const row = (e.value as { node: string; revision?: number }[]).find((r) => r.node === seed);
    revision = row?.revision ?? revision;
  }
  return revision;
}

// ---- 1. the verified backup ------------------------------------------------------------

export interface Backup extends BackupRecord {
  /** Path as given to talosctl (OUT joined). */
  path: string;
  restoreCommand: string;
  /** The revision it had to reach (undefined: no restore recorded in this OUT). */
  restoredRevision?: number;
  /** Kept from an earlier run of this OUT. */
  kept?: boolean;
}

/** `snapshot-20261124T101500Z.db` for the time `ms`. */
export function snapshotName(ms: number): string {
  return `snapshot-${new Date(ms).toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z")}.db`;
}

/** The command that restores a cluster from `path` on `node` (a snapshot has its hash). */
export function restoreCommand(ctx: Ctx, node: string, path: string): string {
  return shellLine(talosArgv(ctx, node, ["bootstrap", `--recover-from=${path}`]));
}

/** The member to take the backup from: the named seed (if healthy), else the first healthy. */
export async function snapshotMember(ctx: Ctx, seed?: string): Promise<string> {
  const named = seed ?? ctx.opts.seed ?? readProgress(ctx.opts.out).seed;
  const seen: string[] = [];
  for (const node of named ? [named] : ctx.opts.nodes) {
    const look = await lookAtEtcd(ctx, node, SNAPSHOT_STEP);
    if (look.kind === "up" && look.info.state === "Running" && look.info.health === "OK") {
      return node;
    }
    seen.push(`${node}: ${describe(look)}`);
  }
  throw new StepError(`No healthy etcd member to take the backup from (${seen.join("; ")})`, {
    hint: named
      ? `etcd on the seed must run with HEALTH OK; run deno task verify, or name another --seed`
      : "run deno task verify: etcd must run on at least one member",
  });
}

/** The backup recorded in this OUT, if its step is done and its bytes still match. */
async function keptBackup(ctx: Ctx): Promise<BackupRecord | undefined> {
  if (!afterProgress(ctx.opts.out).done.has(SNAPSHOT_STEP)) return undefined;
  const last = readManifest(ctx.opts.out)?.backups?.at(-1);
  if (!last) return undefined;
  const path = join(ctx.opts.out, last.file);
  if (existsSync(path) && await sha256File(path) === last.sha256) return last;
  ctx.log.warn(`the backup ${path} recorded earlier is missing or changed: taking a new one`);
  return undefined;
}

/** Takes, reads back and records the backup; keeps a verified one from an earlier run. */
export async function takeBackup(ctx: Ctx, seed?: string): Promise<Backup> {
  const kept = await keptBackup(ctx);
  const node = kept?.node ?? await snapshotMember(ctx, seed);
  const minRevision = restoredRevision(ctx.opts.out, readProgress(ctx.opts.out).seed ?? seed);
  let backup: Backup | undefined;
  await step(ctx, SNAPSHOT_STEP, `Taking a verified backup of etcd on ${node}`, async () => {
    if (kept) {
      const path = join(ctx.opts.out, kept.file);
      ctx.log.info(`kept: ${path} (verified ${kept.takenAt}, sha256 ${kept.sha256})`);
      backup = { ...kept, path, restoreCommand: restoreCommand(ctx, node, path), kept: true };
      return;
    }
    backup = await snapshotOnce(ctx, node, minRevision);
  });
  const b = backup!;
  ctx.journal.record({ type: "fact", key: "after:backup", value: b });
  ctx.log.ok(`backup ${b.path}: revision ${b.revision}, sha256 ${b.sha256}`);
  ctx.log.info(`to restore from it: ${b.restoreCommand}`);
  return b;
}

async function snapshotOnce(ctx: Ctx, node: string, minRevision?: number): Promise<Backup> {
  const takenMs = ctx.deps.now();
  const file = snapshotName(takenMs);
  const path = join(ctx.opts.out, file);
  if (existsSync(path)) {
    throw new RefusedError(`"${path}" exists already: a backup is never overwritten`, {
      hint: "wait a second and run again",
    });
  }
  const args = afterSub.snapshot(path);
  const r = await talos(ctx, node, args, {
    step: SNAPSHOT_STEP,
    echo: true,
    timeoutMs: SNAPSHOT_TIMEOUT_MS,
  });
  rmSync(`${path}.part`, { force: true }); // talosctl's own temporary file, if it was cut short
  if (r.code !== 0) {
    rmSync(path, { force: true });
    throw commandFailure(ctx, node, args, r, "etcd must run with HEALTH OK on that member");
  }
  const problem = await checkSnapshot(ctx, path, r, minRevision);
  if (typeof problem === "string") {
    const rejected = `${path}.rejected`;
    if (existsSync(path)) renameSync(path, rejected);
    throw new StepError(`The backup from "${node}" failed its read-back: ${problem}`, {
      hint: `kept aside as ${rejected} (never restore from it); run deno task after again`,
    });
  }
  const record: BackupRecord = {
    file,
    node,
    size: statSync(path).size,
    sha256: await sha256File(path),
    revision: problem.revision,
    takenAt: new Date(takenMs).toISOString(),
  };
  const manifest = readManifest(ctx.opts.out) ??
    { version: 1 as const, nodes: ctx.opts.nodes, copies: {}, failures: {} };
  manifest.backups = [...(manifest.backups ?? []), record];
  writeManifest(ctx.opts.out, manifest);
  return {
    ...record,
    path,
    restoreCommand: restoreCommand(ctx, node, path),
    restoredRevision: minRevision,
  };
}

/** The read-back: the reason it is not a good backup, or its revision. */
async function checkSnapshot(
  ctx: Ctx,
  path: string,
  r: RunResult,
  minRevision?: number,
): Promise<string | { revision: number }> {
  if (!existsSync(path)) return `talosctl exited 0 but "${path}" is not there`;
  chmodSync(path, 0o600);
  const size = statSync(path).size;
  const saved = parseSnapshotSaved(r.stdout);
  if (!saved) return `talosctl did not say it saved it: ${tail(r.stdout, 2) || "(no output)"}`;
  if (saved.bytes !== size) return `talosctl wrote ${saved.bytes} bytes, the file has ${size}`;
  if (!hashTrailerOk(path, size)) {
    return "its sha256 trailer is missing or wrong (a snapshot ends with the sha256 of the db)";
  }
  let status;
  try {
    status = await ctx.deps.db.status(path);
  } catch (error) {
    if (!(error instanceof EtcdDbError)) throw error;
    return `the reader refuses it: ${error.message}`;
  }
  if (minRevision !== undefined && status.revision < minRevision) {
    return `revision ${status.revision} is below the restored revision ${minRevision}`;
  }
  if (status.alarms.length > 0) {
    return `it holds the alarm ${
      status.alarms.map((a) => `${a.type} (member ${a.memberIdHex})`).join(", ")
    }: disarm first (deno task disarm)`;
  }
  if (saved.revision !== status.revision) {
    ctx.log.warn(`talosctl says revision ${saved.revision}, the reader ${status.revision}`);
  }
  ctx.log.ok(
    `read back: intact, revision ${status.revision}${
      minRevision !== undefined ? ` (restored: ${minRevision})` : " (no restore recorded in OUT)"
    }, no alarm`,
  );
  return { revision: status.revision };
}

/** `etcdctl snapshot save` appends the sha256 of everything before it (size % 512 == 32). */
function hashTrailerOk(path: string, size: number): boolean {
  if (size % 512 !== 32) return false;
  const data = readFileSync(path);
  const body = data.subarray(0, size - 32);
  return createHash("sha256").update(body).digest().equals(data.subarray(size - 32));
}

// ---- 2. the workers' kubelets -----------------------------------------------------------

export interface Worker {
  address: string;
  /** Kubernetes node name or Talos hostname. */
  name: string;
}

export interface WorkerView {
  workers: Worker[];
  /** What kubectl did: answered, not installed, failed (with its error). */
  kubectl: "ok" | "absent" | "failed";
  source: "kubectl get nodes" | "talosctl get members";
  kubectlError?: string;
}

function kubectlBin(ctx: Ctx): string {
  return ctx.opts.kubectl ?? "kubectl";
}

/** Runs kubectl with its deadline; exit 127 when it is not installed. */
export function kubectl(ctx: Ctx, args: string[], step: string, mutating = false) {
  return runCommand(ctx, "kubectl", [kubectlBin(ctx), ...args], {
    step,
    mutating,
    allowMissing: true,
    timeoutMs: KUBECTL_CALL_MS,
  });
}

/** kubectl's answers while the API is briefly out of reach: waited through. */
const KUBE_NOT_YET =
  /Unable to connect to the server|connection refused|i\/o timeout|TLS handshake timeout|ServiceUnavailable|the server is currently unable|etcdserver: request timed out|context deadline exceeded/;

function kubectlProblem(r: RunResult): string {
  return r.code === 127 ? "kubectl not found" : tail(r.stderr, 1) || `kubectl exit ${r.code}`;
}

/** The workers: kubectl's nodes without the control-plane role, else Talos' members. */
export async function findWorkers(ctx: Ctx, via: string): Promise<WorkerView> {
  const cp = new Set(ctx.opts.nodes);
  const r = await kubectl(ctx, ["get", "nodes", "-o", "wide"], "after:workers");
  if (r.code === 0) {
    const rows = parseKubeNodes(r.stdout);
    const workers = rows.filter((n) =>
      !n.roles.includes("control-plane") && !n.roles.includes("master") && !cp.has(n.internalIp)
    );
    for (const w of workers.filter((w) => w.internalIp === "")) {
      ctx.log.warn(`node ${w.name} has no INTERNAL-IP: its kubelet is left alone`);
    }
    return {
      workers: workers.filter((w) => w.internalIp !== "")
        .map((w) => ({ address: w.internalIp, name: w.name })),
      kubectl: "ok",
      source: "kubectl get nodes",
    };
  }
  const kubectlError = kubectlProblem(r);
  ctx.log.warn(`${kubectlError}: asking Talos for the workers (get members on ${via})`);
  const args = afterSub.members();
  const m = await talos(ctx, via, args, { step: "after:workers" });
  if (m.code !== 0) {
    throw commandFailure(
      ctx,
      via,
      args,
      m,
      `the workers could not be found (kubectl: ${kubectlError}); set KUBECTL, or restart ` +
        "each worker's kubelet by hand: talosctl -e W -n W service kubelet restart",
    );
  }
  const workers = parseTalosMembers(m.stdout).filter((x) => x.machineType === "worker")
    .map((x) => ({
      address: x.addresses.find((a) => !a.includes(":")) ?? x.addresses[0] ?? "",
      name: x.hostname,
    }))
    .filter((w) => w.address !== "" && !cp.has(w.address));
  return {
    workers,
    kubectl: r.code === 127 ? "absent" : "failed",
    source: "talosctl get members",
    kubectlError,
  };
}

export interface KubeletOutcome {
  restarted: string[];
  /** Restarted by an earlier run of this OUT (not again). */
  already: string[];
  /** Why nothing was restarted, when so. */
  skipped?: string;
}

/**
 * Restarts each worker's kubelet, one at a time, after the confirmation (or --yes); `skip`
 * names why none is restarted (recover after a procedure that lost no write).
 */
export async function restartKubelets(
  ctx: Ctx,
  view: WorkerView,
  skip?: string,
): Promise<KubeletOutcome> {
  const progress = afterProgress(ctx.opts.out);
  const already = view.workers.filter((w) => progress.done.has(kubeletStep(w.address)))
    .map((w) => w.address);
  const todo = view.workers.filter((w) => !already.includes(w.address));
  const outcome: KubeletOutcome = { restarted: [], already };
  if (skip ?? ctx.opts.noKubeletRestart) {
    ctx.log.info(`${skip ?? "--no-kubelet-restart"}: the workers' kubelets are left alone`);
    return { ...outcome, skipped: skip ?? "--no-kubelet-restart" };
  }
  if (view.workers.length === 0) return { ...outcome, skipped: "no workers" };
  if (already.length > 0) ctx.log.info(`restarted earlier in this OUT: ${already.join(", ")}`);
  if (todo.length === 0) return outcome;
  await confirm(
    ctx,
    `restart the kubelet on ${todo.map((w) => w.address).join(", ")} (workers, one at a time)`,
    () => kubeletPlan(ctx, todo, view.kubectl === "ok"),
  );
  ctx.continueWith = afterCommand(ctx, ctx.opts.seed, true);
  for (const w of todo) {
    if (!progress.restarted.has(w.address) && progress.cutOff.has(w.address)) {
      ctx.log.info(
        `${w.address}: its earlier restart was cut off before talosctl answered: sending it again`,
      );
    }
    await restartOne(ctx, w, view.kubectl === "ok", progress.restarted.has(w.address));
    outcome.restarted.push(w.address);
  }
  return outcome;
}

async function restartOne(ctx: Ctx, w: Worker, useKubectl: boolean, sentBefore: boolean) {
  if (ctx.opts.nodes.includes(w.address)) {
    throw new RefusedError(`"${w.address}" is a control-plane node: its kubelet is not restarted`);
  }
  const name = kubeletStep(w.address);
  await step(ctx, name, `Restarting the kubelet on ${w.address} (${w.name})`, async () => {
    if (sentBefore) ctx.log.info(`${w.address}: its restart was accepted earlier: waiting`);
    else {
      const args = afterSub.kubeletRestart();
      const r = await talos(ctx, w.address, args, { step: name, mutating: true });
      if (r.code !== 0) throw commandFailure(ctx, w.address, args, r);
    }
    const what = `the kubelet on "${w.address}" to run again${
      useKubectl ? ` and node ${w.name} to be Ready` : ""
    }`;
    try {
      await poll(ctx, {
        what,
        intervalMs: SERVICE_POLL_MS,
        timeoutMs: ctx.opts.timeoutMs,
        check: () => kubeletBack(ctx, w, useKubectl, name),
      });
    } catch (error) {
      if (!(error instanceof DeadlineError)) throw error;
      throw new DeadlineError(error.message, {
        hint: `look at talosctl -e ${w.address} -n ${w.address} logs kubelet; the next workers ` +
          "were not touched; run deno task after again to wait and go on",
      });
    }
  });
}

async function kubeletBack(ctx: Ctx, w: Worker, useKubectl: boolean, name: string) {
  const r = await talos(ctx, w.address, afterSub.serviceKubelet(), { step: name });
  if (r.code !== 0) {
    if (r.timedOut || isUnreachable(r.stderr)) return { done: false as const, state: "no answer" };
    throw commandFailure(ctx, w.address, afterSub.serviceKubelet(), r);
  }
  const info = parseServiceInfo(r.stdout).find((b) => b.id === "kubelet");
  if (!info) return { done: false as const, state: "no kubelet block in the answer" };
  if (info.state !== "Running" || info.health !== "OK") {
    return { done: false as const, state: `kubelet ${info.state} (HEALTH ${info.health})` };
  }
  if (!useKubectl) return { done: true as const, value: undefined };
  const k = await kubectl(ctx, ["get", "nodes"], name);
  if (k.code !== 0) {
    // the API not answering for a moment is "not yet"; any other answer (Unauthorized,
    // forbidden, a bad kubeconfig) will not change by waiting
    if (k.timedOut || KUBE_NOT_YET.test(k.stderr)) {
      return { done: false as const, state: `kubectl: ${kubectlProblem(k)}` };
    }
    throw new StepError(`kubectl get nodes failed: ${kubectlProblem(k)}`, {
      hint: `the kubelet on ${w.address} was restarted and runs; fix kubectl's access, then ` +
        "run deno task after again (it waits for this node, then goes on)",
    });
  }
  const row = parseKubeNodes(k.stdout).find((n) => n.name === w.name);
  if (!row) return { done: false as const, state: `kubelet runs; ${w.name} not listed` };
  return isKubeReady(row.status)
    ? { done: true as const, value: undefined }
    : { done: false as const, state: `kubelet runs; node ${row.status}` };
}

/** The restarts as bash: one worker at a time, each waited for. */
export function kubeletPlan(ctx: Ctx, workers: Worker[], useKubectl: boolean): string[] {
  const seconds = ctx.opts.timeoutMs / 1000;
  return [
    "# Restart the kubelet of each worker, one at a time: after a restore its watches may point",
    "# at revisions the restored etcd never had (control-plane nodes are never touched here)",
    ...workers.flatMap((w) => [
      talosPlan(w.address, afterSub.kubeletRestart()),
      waitForPlan(`the kubelet on ${w.address}`, seconds, kubeletOkPlan(w.address)),
      ...(useKubectl
        ? [
          shellLine([
            "kubectl",
            "wait",
            "--for=condition=Ready",
            `node/${w.name}`,
            `--timeout=${Math.round(seconds)}s`,
          ]),
        ]
        : []),
    ]),
  ];
}

// ---- 3. stuck workloads -----------------------------------------------------------------

export interface StuckPod {
  namespace: string;
  name: string;
  node: string;
  phase: string;
  reason: string;
  age: string;
  /** `ReplicaSet/web-7d4b9c` or "" for a bare pod. */
  owner: string;
  /** A controller recreates it: deleting it restarts it. */
  restartable: boolean;
  /** Why it is never deleted, when not restartable. */
  why?: string;
  volumeEvent?: { reason: string; message: string; at: string };
  command: string;
}

/** kubectl's age: `45s`, `12m`, `5h`, `3d`. */
export function kubeAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** The pods that are neither Running with every container ready, nor Succeeded. */
export function findStuck(
  pods: PodInfo[],
  events: PodEvent[],
  nowMs: number,
  bin = "kubectl",
): StuckPod[] {
  return pods.filter((p) => p.phase !== "Succeeded" && !(p.phase === "Running" && p.ready))
    .map((p) => {
      const controller = p.owners.find((o) => o.controller);
      const restartable = controller !== undefined && controller.kind !== "Node";
      const volume = events.filter((e) =>
        e.namespace === p.namespace && e.pod === p.name && VOLUME_REASONS.test(e.reason)
      ).sort((a, b) => Date.parse(a.at) - Date.parse(b.at)).at(-1);
      const owner = controller ?? p.owners[0];
      return {
        namespace: p.namespace,
        name: p.name,
        node: p.node,
        phase: p.phase,
        reason: p.reason,
        age: p.createdAt ? kubeAge(nowMs - Date.parse(p.createdAt)) : "?",
        owner: owner ? `${owner.kind}/${owner.name}` : "",
        restartable,
        why: restartable
          ? undefined
          : controller?.kind === "Node"
          ? "a static pod: the kubelet owns it"
          : "a bare pod: nothing would recreate it",
        volumeEvent: volume && { reason: volume.reason, message: volume.message, at: volume.at },
        command: shellLine([bin, "-n", p.namespace, "delete", "pod", p.name]),
      };
    });
}

export interface PodOutcome {
  /** Undefined when the pods could not be listed (then `detail` says why). */
  stuck?: StuckPod[];
  detail?: string;
  deleted: string[];
  already: string[];
}

/** Lists the stuck pods; returns undefined pods with the reason when kubectl cannot. */
export async function listStuck(ctx: Ctx): Promise<PodOutcome> {
  const r = await kubectl(ctx, ["get", "pods", "-A", "-o", "json"], "after:pods");
  if (r.code !== 0) {
    const detail = kubectlProblem(r);
    return { detail, deleted: [], already: [] };
  }
  const e = await kubectl(ctx, ["get", "events", "-A", "-o", "json"], "after:pods");
  if (e.code !== 0) ctx.log.warn(`events not read (${kubectlProblem(e)}): no volume events shown`);
  const events = e.code === 0 ? parsePodEvents(e.stdout) : [];
  const stuck = findStuck(parsePods(r.stdout), events, ctx.deps.now(), kubectlBin(ctx));
  return { stuck, deleted: [], already: [] };
}

/** Prints the stuck pods grouped by reason (stderr) and the restart commands (stdout). */
export function showStuck(ctx: Ctx, stuck: StuckPod[]): void {
  if (stuck.length === 0) return ctx.log.ok("no stuck pod: every pod runs ready or completed");
  const groups = new Map<string, StuckPod[]>();
  for (const p of stuck) groups.set(p.reason, [...(groups.get(p.reason) ?? []), p]);
  for (const [reason, pods] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
    ctx.log.info(`${reason} (${pods.length}):`);
    for (const p of pods) {
      const v = p.volumeEvent
        ? `; last volume event ${p.volumeEvent.reason}: ${p.volumeEvent.message}`
        : "";
      ctx.log.info(
        `  ${p.namespace}/${p.name} on ${p.node || "(no node)"}, ${p.phase}, ${p.age}, ${
          p.owner || "no owner"
        }${v}`,
      );
    }
  }
  if (ctx.opts.json) return;
  ctx.deps.stdout("# restart a stuck pod (its controller recreates it):\n");
  for (const p of stuck) {
    ctx.deps.stdout(
      p.restartable ? `${p.command}\n` : `# ${p.namespace}/${p.name}: ${p.why}; not deleted\n`,
    );
  }
}

/** `--restart-stuck`: deletes the owned stuck pods, one at a time, after the confirmation. */
export async function restartStuck(ctx: Ctx, outcome: PodOutcome): Promise<void> {
  const done = afterProgress(ctx.opts.out).done;
  const owned = (outcome.stuck ?? []).filter((p) => p.restartable);
  outcome.already = owned.filter((p) => done.has(podStep(p.namespace, p.name)))
    .map((p) => `${p.namespace}/${p.name}`);
  const todo = owned.filter((p) => !done.has(podStep(p.namespace, p.name)));
  for (const p of (outcome.stuck ?? []).filter((p) => !p.restartable)) {
    ctx.log.info(`${p.namespace}/${p.name} is ${p.why}: listed, never deleted`);
  }
  if (todo.length === 0) return;
  await confirm(
    ctx,
    `delete ${todo.length} stuck pod(s) a controller recreates: ${
      todo.map((p) => `${p.namespace}/${p.name}`).join(", ")
    }`,
    () => [
      "# Delete each stuck pod a controller recreates, one at a time",
      ...todo.map((p) => p.command),
    ],
  );
  for (const p of todo) {
    const name = podStep(p.namespace, p.name);
    await step(ctx, name, `Restarting pod ${p.namespace}/${p.name} (${p.owner})`, async () => {
      const r = await kubectl(ctx, ["-n", p.namespace, "delete", "pod", p.name], name, true);
      if (r.code !== 0 && !/NotFound|not found/.test(r.stderr)) {
        throw new StepError(
          `kubectl delete pod ${p.namespace}/${p.name} failed: ${kubectlProblem(r)}`,
        );
      }
      outcome.deleted.push(`${p.namespace}/${p.name}`);
    });
  }
}

// ---- the whole of it --------------------------------------------------------------------

export interface AfterResult {
  backup: Backup;
  workers: WorkerView;
  kubelets: KubeletOutcome;
  pods: PodOutcome;
}

export interface AfterOptions {
  /** Why no kubelet is restarted (a procedure that lost no write); default: the flags decide. */
  skipKubelets?: string;
}

/**
 * After the restore: the verified backup, the workers' kubelets, the stuck pods, as one step
 * (`after`) around the three. `seed` is the member restored (recover passes it); without it,
 * the journal's seed or a healthy one.
 */
export function after(ctx: Ctx, seed?: string, options: AfterOptions = {}): Promise<AfterResult> {
  return step(
    ctx,
    AFTER_STEP,
    "After the restore: a verified backup, the workers' kubelets, the stuck workloads",
    () => afterParts(ctx, seed, options),
  );
}

async function afterParts(ctx: Ctx, seed: string | undefined, options: AfterOptions) {
  const backup = await takeBackup(ctx, seed);
  ctx.clusterState = `restored; a verified backup is at ${backup.path}`;
  ctx.log.step(
    `Finding the workers (kubectl get nodes, else talosctl get members on ${backup.node})`,
  );
  const workers = await findWorkers(ctx, backup.node);
  ctx.log.info(
    workers.workers.length === 0
      ? `no workers (${workers.source})`
      : `workers (${workers.source}): ${
        workers.workers.map((w) => `${w.address} (${w.name})`).join(", ")
      }`,
  );
  const kubelets = await restartKubelets(ctx, workers, options.skipKubelets);
  ctx.journal.record({
    type: "fact",
    key: "after:kubelets",
    value: { workers: workers.workers, ...kubelets },
  });
  ctx.log.step("Looking for workloads stuck since the freeze (kubectl get pods -A -o json)");
  const pods = await listStuck(ctx);
  if (pods.stuck) showStuck(ctx, pods.stuck);
  else ctx.log.warn(`stuck workloads not checked: ${pods.detail}`);
  try {
    if (pods.stuck && ctx.opts.restartStuck) await restartStuck(ctx, pods);
  } finally {
    ctx.journal.record({ type: "fact", key: "after:pods", value: pods });
  }
  const result = { backup, workers, kubelets, pods };
  if (ctx.opts.json) ctx.deps.stdout(JSON.stringify(result, null, 2) + "\n");
  if (!pods.stuck && workers.kubectl === "failed") {
    throw new StepError(`Stuck workloads not checked: ${pods.detail}`, {
      hint: "the backup and the kubelets are done; run deno task after again once kubectl answers",
    });
  }
  return result;
}

/** What the after part left, in words (the cluster state a run ends with). */
export function afterSummary(r: AfterResult): string {
  return `backup ${r.backup.path}; kubelets restarted: ${
    r.kubelets.restarted.length + r.kubelets.already.length
  } of ${r.workers.workers.length} workers${
    r.kubelets.skipped ? ` (${r.kubelets.skipped})` : ""
  }; stuck pods: ${r.pods.stuck ? r.pods.stuck.length : "not checked"}`;
}

/**
 * `deno task after …` that runs the after part again on its own: `--yes` (the procedure was
 * agreed to), the seed restored (if any), and the flags of this run.
 */
export function afterCommand(ctx: Ctx, seed: string | undefined, kubelets: boolean): string {
  const extra = ["--yes"];
  if (!kubelets || ctx.opts.noKubeletRestart) extra.push("--no-kubelet-restart");
  if (ctx.opts.restartStuck) extra.push("--restart-stuck");
  return taskCommand("after", { ...ctx.opts, seed }, extra);
}

/** The after part failed, or was stopped, once etcd itself was recovered: the same exit code. */
export class AfterPartError extends CommandError {
  constructor(recovered: string, cause: RecoveryError) {
    super(
      `etcd is recovered (${recovered}); only the after part did not finish: ${cause.message}`,
      cause instanceof CommandError ? cause.command : "",
      cause instanceof CommandError ? cause.code : null,
      cause instanceof CommandError ? cause.stderr : "",
      { hint: cause.hint },
    );
    this.exitCode = cause.exitCode;
  }
}

/**
 * The end of `recover`: the after part, once etcd is recovered (`recovered` says how, in
 * words). After the full rebuild (`seed` restored) the kubelets are restarted as the flags
 * say; after a procedure that lost no write (replace, defrag) they are left alone. A failure
 * here leaves etcd recovered: the error says so, and `ctx.continueWith` is the command that
 * runs the after part again on its own.
 */
export async function afterRecover(
  ctx: Ctx,
  recovered: string,
  how: { seed: string } | { inPlace: string },
): Promise<AfterResult> {
  const seed = "seed" in how ? how.seed : undefined;
  const again = afterCommand(ctx, seed, seed !== undefined);
  ctx.continueWith = again;
  try {
    const r = await after(ctx, seed, {
      skipKubelets: "inPlace" in how
        ? `${how.inPlace} lost no write: no kubelet restart needed`
        : undefined,
    });
    ctx.clusterState = `${recovered}; ${afterSummary(r)}`;
    ctx.continueWith = undefined;
    return r;
  } catch (error) {
    ctx.clusterState = `${recovered}; the after part did not finish`;
    ctx.continueWith = again;
    if (!(error instanceof RecoveryError) || error.exitCode === 0) throw error;
    throw new AfterPartError(recovered, error);
  }
}

/**
 * The whole of `after` as bash, for --dry-run and recover's plan (the workers and pods are
 * found when it runs). `seed` may be `$SEED` (recover's plan, before the status step chose it).
 */
export function afterPlan(ctx: Ctx, seed?: string, options: AfterOptions = {}): string[] {
  const node = seed ?? ctx.opts.seed ?? readProgress(ctx.opts.out).seed ?? ctx.opts.nodes[0];
  const seconds = Math.round(ctx.opts.timeoutMs / 1000);
  const cp = ctx.opts.nodes.join("|").replaceAll(".", "\\.");
  // what a run with this OUT would not do again (see `after`): the backup kept, the kubelets
  // already restarted
  const progress = afterProgress(ctx.opts.out);
  const kept = progress.done.has(SNAPSHOT_STEP)
    ? readManifest(ctx.opts.out)?.backups?.at(-1)
    : undefined;
  const notAgain = [...progress.restarted];
  const lines = kept
    ? [
      `# After the restore 1/3: kept: the verified backup taken earlier, ${
        join(ctx.opts.out, kept.file)
      } (sha256 ${kept.sha256}); not taken again`,
      `# to restore from it: ${
        shellLine(talosArgv(ctx, kept.node, ["bootstrap"]))
      } --recover-from=${shellLine([join(ctx.opts.out, kept.file)])}`,
    ]
    : [
      `# After the restore 1/3: a verified backup from ${node} (a healthy member)`,
      `snap=${shellLine([join(ctx.opts.out, "snapshot-")])}"$(date -u +%Y%m%dT%H%M%SZ).db"`,
      `${talosPlan(node, ["etcd", "snapshot"])} "$snap"`,
      `chmod 600 "$snap" && sha256sum "$snap"`,
      `ETCDCTL_API=3 etcdctl snapshot status "$snap" -w table  # revision at least the restored one`,
      `# to restore from it: ${
        shellLine(talosArgv(ctx, node, ["bootstrap"]))
      } --recover-from="$snap"`,
    ];
  const skip = options.skipKubelets ??
    (ctx.opts.noKubeletRestart ? "--no-kubelet-restart: the kubelets are left alone" : undefined);
  if (skip) lines.push(`# 2/3: ${skip}`);
  else {
    lines.push(
      "# 2/3: restart the kubelet of each worker, one at a time (never a control-plane node);",
      `# without kubectl, ${talosPlan(node, afterSub.members())} lists them (MACHINE TYPE worker)`,
      ...(notAgain.length > 0
        ? [`# restarted earlier in this OUT, not again: ${notAgain.join(", ")}`]
        : []),
      "workers=$(kubectl get nodes -o wide --no-headers \\",
      "  | awk '$3 !~ /control-plane|master/ {print $6}' \\",
      `  | grep -Ev '^(${
        [cp, ...notAgain.map((n) => n.replaceAll(".", "\\."))].join("|")
      })$' || true)`,
      "for w in $workers; do",
      `  talos "$w" ${shellLine(afterSub.kubeletRestart())}`,
      `  wait_for "the kubelet on $w" ${seconds} kubelet_ok "$w"`,
      "done",
    );
  }
  lines.push(
    "# 3/3: pods stuck since the freeze (not Running with every container ready, nor Completed)",
    'kubectl get pods -A -o wide | awk \'NR == 1 || $4 != "Completed" &&',
    '  !($4 == "Running" && split($3, r, "/") && r[1] == r[2])\'',
    ctx.opts.restartStuck
      ? "# then each stuck pod a controller owns: kubectl -n NS delete pod NAME (bare pods: never)"
      : "# restart one a controller owns with: kubectl -n NS delete pod NAME (bare pods: never)",
  );
  return lines;
}
