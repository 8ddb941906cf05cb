/**
 * What the lab answers for `deno task after`: `etcd snapshot PATH` (real etcd: `etcdctl
 * snapshot save` against the node's member; model: the cluster's fixture, disarmed when the
 * cluster's alarms are), `service kubelet [restart]` on control-plane nodes and on two workers
 * (127.0.53.20, .21), `get members`, and, for the fake kubectl, the workers' rows of `get
 * nodes`, a few pods (some stuck since the freeze) and their events, `delete pod`.
 *
 * A kubelet restart takes `KUBELET_RESTART_S` (scaled by the lab's speed): meanwhile its
 * service is Preparing (HEALTH ?) and its node NotReady. A deleted pod that a controller owns
 * comes back running (a ReplicaSet's with a new name, a StatefulSet's with the same); a bare
 * pod is simply gone. The workers and pods are added to the state the first time they are
 * asked for (older labs have none).
 */

import { copyFileSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import type { EtcdBackend } from "./backend.ts";
import {
  dialError,
  goQuote,
  multierror,
  nodeRpcError,
  renderServices,
  tabwrite,
} from "./format.ts";
import { fixtureManifest, fixturePath } from "./fixtures.ts";
import { disarmedSnapshotPath } from "./make_snapshot_fixture.ts";
import { findNode, type LabState, note, reachable } from "./state.ts";
import type { Parsed, Reply } from "./reply.ts";
import type { SimPod, SimWorker } from "./state.ts";

/** A real kubelet restart: stopped, its pre state, started, first health check. */
export const KUBELET_RESTART_S = 10;

const WORKERS: [string, string][] = [["127.0.53.20", "talos-worker-1"], [
  "127.0.53.21",
  "talos-worker-2",
]];

/** The lab's workers (added on first use). */
export function workersOf(s: LabState): SimWorker[] {
  s.workers ??= WORKERS.map(([label, name]) => ({ label, name, restarts: [] }));
  return s.workers;
}

/** The lab's pods (added on first use): three stuck since the freeze, two healthy. */
export function podsOf(s: LabState): SimPod[] {
  const [w1, w2] = workersOf(s).map((w) => w.name);
  const t = s.createdAt;
  s.pods ??= [
    {
      namespace: "kube-system",
      name: `kube-apiserver-${s.nodes[0].name}`,
      node: s.nodes[0].name,
      phase: "Running",
      ready: true,
      owner: { kind: "Node", name: s.nodes[0].name },
      createdAt: t,
    },
    {
      namespace: "default",
      name: "web-7d4b9c6f8-x2x9q",
      node: w1,
      phase: "Running",
      ready: true,
      owner: { kind: "ReplicaSet", name: "web-7d4b9c6f8" },
      createdAt: t,
    },
    {
      namespace: "default",
      name: "db-0",
      node: w1,
      phase: "Pending",
      ready: false,
      waiting: "ContainerCreating",
      owner: { kind: "StatefulSet", name: "db" },
      createdAt: t,
      volumeEvent: {
        reason: "FailedMount",
        message: 'MountVolume.WaitForAttach failed for volume "pvc-1f2e": timed out',
        at: t,
      },
    },
    {
      namespace: "default",
      name: "api-5f6d8b7c9-q8w7e",
      node: w2,
      phase: "Running",
      ready: false,
      waiting: "CrashLoopBackOff",
      owner: { kind: "ReplicaSet", name: "api-5f6d8b7c9" },
      createdAt: t,
    },
    {
      namespace: "default",
      name: "debug-shell",
      node: w2,
      phase: "Pending",
      ready: false,
      waiting: "ContainerCreating",
      createdAt: t,
      volumeEvent: {
        reason: "FailedAttachVolume",
        message: 'AttachVolume.Attach failed for volume "pvc-9a8b": rpc error: DeadlineExceeded',
        at: t,
      },
    },
  ];
  return s.pods;
}

function kubeletUp(w: SimWorker | undefined, now: number): boolean {
  const last = w?.restarts.at(-1);
  return !last || now >= last.upAt;
}

// ---- talosctl ------------------------------------------------------------------------------

const ok = (stdout = ""): Reply => ({ stdout, stderr: "", code: 0 });

const fail = (stderr: string, code = 1): Reply => ({ stdout: "", stderr: stderr + "\n", code });

/** Answers the commands of `after`; undefined for every other command line. */
export async function answerAfter(
  s: LabState,
  be: EtcdBackend,
  p: Parsed,
  now: number,
): Promise<Reply | undefined> {
  const cmd = p.words.join(" ");
  const isSnapshot = p.words[0] === "etcd" && p.words[1] === "snapshot";
  const known = isSnapshot || cmd === "service kubelet" || cmd === "service kubelet restart" ||
    cmd === "get members" || cmd === "get member";
  if (!known) return undefined;
  const labels = p.flags.get("nodes") ?? [];
  const ep = (p.flags.get("endpoints") ?? [])[0];
  const up = (label: string | undefined) => {
    const n = label === undefined ? undefined : findNode(s, label);
    if (n) return reachable(n);
    return workersOf(s).some((w) => w.label === label);
  };
  const prefix = isSnapshot
    ? "error reading file: "
    : cmd.startsWith("service")
    ? (cmd.endsWith("restart") ? "error restarting service: " : "error listing services: ")
    : "";
  if (!ep) return fail("failed to determine endpoints");
  if (!up(ep)) return fail(prefix + dialError(ep));
  if (isSnapshot) return await snapshot(s, be, p, labels, now);
  const errors: string[] = [];
  const okLabels = labels.filter((l) => {
    if (up(l)) return true;
    errors.push(`${l}: ${dialError(l)}`);
    return false;
  });
  const reply = cmd === "service kubelet"
    ? ok(kubeletServices(s, okLabels, now))
    : cmd === "service kubelet restart"
    ? ok(restartKubelets(s, okLabels, now))
    : ok(members(s, okLabels));
  if (errors.length === 0) return reply;
  return { ...reply, stderr: prefix + multierror(errors) + "\n", code: 1 };
}

function kubeletServices(s: LabState, labels: string[], now: number): string {
  const views = labels.map((label) => {
    const w = workersOf(s).find((x) => x.label === label);
    const since = w?.restarts.at(-1)?.at ?? findNode(s, label)?.phaseAt ?? s.createdAt;
    const upAt = w?.restarts.at(-1)?.upAt ?? since;
    const running = kubeletUp(w, now);
    const events = [
      { at: since, state: "Starting", msg: "Starting service" },
      {
        at: since,
        state: "Waiting",
        msg: 'Waiting for service "cri" to be "up", time sync, network, kubelet spec',
      },
      { at: since, state: "Preparing", msg: "Running pre state" },
      ...(running
        ? [
          { at: upAt, state: "Preparing", msg: "Creating service runner" },
          {
            at: upAt,
            state: "Running",
            msg: "Started task kubelet (PID 4121) for container kubelet",
          },
          { at: upAt, state: "Running", msg: "Health check successful" },
        ]
        : []),
    ];
    return {
      node: label,
      state: running ? "Running" : "Preparing",
      health: running ? "OK" : "?",
      healthMessage: "",
      events,
    };
  });
  return renderServices(views, now).replace(/^ID(\s+)etcd$/gm, "ID$1kubelet");
}

function restartKubelets(s: LabState, labels: string[], now: number): string {
  let text = "NODE\tRESPONSE\n";
  for (const label of labels) {
    const w = workersOf(s).find((x) => x.label === label);
    w?.restarts.push({ at: now, upAt: now + (KUBELET_RESTART_S * 1000) / s.speed });
    note(s, `kubelet restarted on ${label}${w ? "" : " (a control-plane node)"}`);
    text += `${label}\tService "kubelet" restarted\n`;
  }
  return tabwrite(text);
}

function members(s: LabState, labels: string[]): string {
  let text = "NODE\tNAMESPACE\tTYPE\tID\tVERSION\tHOSTNAME\tMACHINE TYPE\tOS\tADDRESSES\n";
  for (const label of labels) {
    const all = [
      ...s.nodes.map((n) => [n.name, "controlplane", n.label]),
      ...workersOf(s).map((w) => [w.name, "worker", w.label]),
    ];
    for (const [name, type, addr] of all) {
      text += `${label}\tcluster\tMember\t${name}\t1\t${name}\t${type}\tTalos (v1.13.9)\t` +
        `${JSON.stringify([addr])}\n`;
    }
  }
  return tabwrite(text);
}

async function snapshot(
  s: LabState,
  be: EtcdBackend,
  p: Parsed,
  labels: string[],
  _now: number,
): Promise<Reply> {
  if (labels.length !== 1) {
    return fail(`command "etcd snapshot" is not supported with multiple nodes`);
  }
  if (p.words.length !== 3) return fail(`accepts 1 arg(s), received ${p.words.length - 2}`);
  const path = p.words[2];
  const n = findNode(s, labels[0]);
  if (!n) {
    return fail(`error reading file: ${multierror([`${labels[0]}: ${dialError(labels[0])}`])}`);
  }
  if (!reachable(n)) {
    return fail(`error reading file: ${multierror([`${n.label}: ${dialError(n.label)}`])}`);
  }
  if (n.phase !== "running" || !be.running(s, n)) {
    return fail(
      "error reading file: " + multierror([
        nodeRpcError(n.label, "Unknown", "failed to create etcd client: context deadline exceeded"),
      ]),
    );
  }
  const part = `${path}.part`;
  let figures: { hash: number; revision: number; totalKey: number; totalSize: number };
  if (s.backend === "etcd") {
    const o = await new Deno.Command("etcdctl", {
      args: ["--endpoints", `http://127.0.0.1:${n.clientPort}`, "snapshot", "save", part],
      env: { ETCDCTL_API: "3" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!o.success) {
      rmSync(part, { force: true });
      const err = new TextDecoder().decode(o.stderr).trim().split("\n").at(-1) ?? "";
      return fail(`error reading: ${err.replace(/^Error: /, "")}`);
    }
    renameSync(part, path);
    const st = await be.snapshotStatus(path);
    if ("error" in st) return fail(st.error);
    figures = st;
  } else {
    const c = s.clusters[n.member!.cluster];
    const disarmed = disarmedSnapshotPath(c.fixture);
    if (c.alarms.length === 0 && existsSync(disarmed)) copyFileSync(disarmed, part);
    else {
      const db = readFileSync(fixturePath(c.fixture));
      writeFileSync(part, Buffer.concat([db, createHash("sha256").update(db).digest()]));
    }
    renameSync(part, path);
    figures = fixtureManifest().files[c.fixture];
  }
  Deno.chmodSync(path, 0o600);
  const size = Deno.statSync(path).size;
  note(s, `etcd snapshot of ${n.label} into ${path}`);
  return ok(
    `etcd snapshot saved to ${goQuote(path)} (${size} bytes)\n` +
      `snapshot info: hash ${
        figures.hash.toString(16).padStart(8, "0")
      }, revision ${figures.revision}, ` +
      `total keys ${figures.totalKey}, total size ${figures.totalSize}\n`,
  );
}

// ---- kubectl -------------------------------------------------------------------------------

/** True for the kubectl command lines answered here (besides `get nodes`). */
export function isAfterKubectl(args: string[]): boolean {
  const line = args.join(" ");
  return line === "get pods -A -o json" || line === "get events -A -o json" ||
    (args.length === 5 && args[0] === "-n" && args[2] === "delete" && args[3] === "pod");
}

/** The workers' rows of `kubectl get nodes [-o wide]` (tab-separated, before tabwrite). */
export function workerNodeRows(s: LabState, wide: boolean, age: string, now: number): string {
  return workersOf(s).map((w) =>
    `${w.name}\t${kubeletUp(w, now) ? "Ready" : "NotReady"}\t<none>\t${age}\tv1.36.3` +
    (wide ? `\t${w.label}\t<none>\tTalos (v1.13.9)\t6.18.44-talos\tcontainerd://2.2.7\n` : "\n")
  ).join("");
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");

/** `get pods -A -o json`, `get events -A -o json`, `-n NS delete pod NAME`. */
export function answerKubectl(
  s: LabState,
  args: string[],
  now: number,
): { out: string; err: string; code: number } {
  const pods = podsOf(s);
  if (args[0] === "-n") {
    const [, ns, , , name] = args;
    const i = pods.findIndex((p) => p.namespace === ns && p.name === name);
    if (i < 0) {
      return { out: "", err: `Error from server (NotFound): pods "${name}" not found\n`, code: 1 };
    }
    const [gone] = pods.splice(i, 1);
    note(s, `pod ${ns}/${name} deleted`);
    if (gone.owner && gone.owner.kind !== "Node") {
      const again = gone.owner.kind === "StatefulSet"
        ? gone.name
        : `${gone.owner.name}-${Math.random().toString(36).slice(2, 7)}`;
      pods.push({
        namespace: ns,
        name: again,
        node: gone.node,
        phase: "Running",
        ready: true,
        owner: gone.owner,
        createdAt: now,
      });
    }
    return { out: `pod "${name}" deleted\n`, err: "", code: 0 };
  }
  if (args[1] === "events") {
    const items = pods.filter((p) => p.volumeEvent).map((p) => ({
      apiVersion: "v1",
      kind: "Event",
      metadata: {
        name: `${p.name}.1`,
        namespace: p.namespace,
        creationTimestamp: iso(p.volumeEvent!.at),
      },
      involvedObject: { apiVersion: "v1", kind: "Pod", name: p.name, namespace: p.namespace },
      reason: p.volumeEvent!.reason,
      message: p.volumeEvent!.message,
      type: "Warning",
      lastTimestamp: iso(p.volumeEvent!.at),
    }));
    return {
      out: JSON.stringify({ apiVersion: "v1", kind: "List", items }, null, 4) + "\n",
      err: "",
      code: 0,
    };
  }
  const items = pods.map((p) => ({
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: p.name,
      namespace: p.namespace,
      creationTimestamp: iso(p.createdAt),
      ...(p.owner
        ? {
          ownerReferences: [{
            apiVersion: p.owner.kind === "Node" ? "v1" : "apps/v1",
            kind: p.owner.kind,
            name: p.owner.name,
            uid: `uid-${p.owner.name}`,
            controller: true,
          }],
        }
        : {}),
    },
    spec: { nodeName: p.node },
    status: {
      phase: p.phase,
      containerStatuses: [{
        name: "main",
        ready: p.ready,
        restartCount: p.waiting === "CrashLoopBackOff" ? 7 : 0,
        state: p.waiting
          ? { waiting: { reason: p.waiting } }
          : { running: { startedAt: iso(p.createdAt) } },
      }],
    },
  }));
  return {
    out: JSON.stringify({ apiVersion: "v1", kind: "List", items }, null, 4) + "\n",
    err: "",
    code: 0,
  };
}
