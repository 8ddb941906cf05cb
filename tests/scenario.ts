/**
 * Building blocks for replayed incidents: the example cluster of the reference outputs
 * (192.168.53.10-12, seed .11 with the highest revision, VIP .2), copies made on disk as if
 * extracted, and recordings for each step's talosctl calls, answered with the captured
 * output of fixtures/talosctl/.
 */

import { fileTimes, settlesAt } from "../lib/recovery/manifest.ts";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { Buffer } from "node:buffer";
import { fx, type Recording } from "./replay.ts";

export const NODES = ["192.168.53.10", "192.168.53.11", "192.168.53.12"];
/** The copy of .11 has the highest revision in the fixtures (1843517). */
export const SEED = "192.168.53.11";
export const VIP = "192.168.53.2";
export const NODES_FLAG = ["--nodes", NODES.join(",")];

/** `talosctl -e N -n N …` as the replay sees it. */
export function T(node: string, ...args: string[]): string {
  return ["talosctl", "-e", node, "-n", node, ...args].join(" ");
}

/** `talos N …`: the same call as the printed plan writes it (its helper adds `-e N -n N`). */
export function P(node: string, ...args: string[]): string {
  return ["talos", node, ...args].join(" ");
}

/** A captured output with its node replaced (for per-node `service etcd` blocks etc.). */
export function fxFor(name: string, node: string): string {
  return fx(name).replaceAll(/192\.168\.53\.1\d/g, node);
}

/** A fresh OUT folder path (not created). */
export function tempOut(): string {
  return join(mkdtempSync(join(tmpdir(), "ter-test-")), "out");
}

/** Writes OUT/db.N/db and a manifest for `nodes`, as extract would. */
export function makeCopies(out: string, nodes = NODES): void {
  mkdirSync(out, { recursive: true, mode: 0o700 });
  const copies: Record<string, unknown> = {};
  for (const n of nodes) {
    const body = `raw db of ${n}`;
    mkdirSync(join(out, `db.${n}`), { recursive: true, mode: 0o700 });
    writeFileSync(join(out, `db.${n}`, "db"), body, { mode: 0o600 });
    copies[n] = {
      file: `db.${n}/db`,
      size: body.length,
      sha256: createHash("sha256").update(body).digest("hex"),
      copiedAt: "2026-11-24T10:00:00.000Z",
    };
  }
  writeFileSync(
    join(out, "manifest.json"),
    JSON.stringify({ version: 1, nodes: NODES, copies, failures: {} }),
  );
}

export const rec = {
  /** `cp` that creates the copy in OUT/db.N.partial/db (`body`: a torn one, say). */
  cp(out: string, node: string, body = `raw db of ${node}`): Recording {
    const partial = join(out, `db.${node}.partial`);
    return {
      cmd: T(node, "cp", "/var/lib/etcd/member/snap/db", partial),
      stdout: fx("cp.txt"),
      effect: () => {
        mkdirSync(partial, { recursive: true });
        writeFileSync(join(partial, "db"), body);
      },
    };
  },
  /** etcdutl answering with the captured status of that node's copy. */
  etcdutl(out: string, node: string, answer?: Partial<Recording>): Recording {
    return {
      cmd: `etcdutl snapshot status ${join(out, `db.${node}`, "db")} -w json`,
      ...answer,
      stdout: answer && "stdout" in answer
        ? answer.stdout
        : fx(`etcdutl-snapshot-status.${node}.json.txt`),
    };
  },
  service(node: string, fixture: string): Recording {
    return { cmd: T(node, "service", "etcd"), stdout: fxFor(fixture, node) };
  },
  refused(node: string): Recording {
    return {
      cmd: T(node, "service", "etcd"),
      stderr: fxFor("service-etcd.connection-refused.direct.err.txt", node),
      code: 1,
    };
  },
  alarms(node: string, fixture: string): Recording {
    return { cmd: T(node, "etcd", "alarm", "list"), stdout: fxFor(fixture, node) };
  },
  reset(node: string, answer?: Partial<Recording>): Recording {
    return {
      cmd: T(
        node,
        "reset",
        "--system-labels-to-wipe",
        "EPHEMERAL",
        "--graceful=false",
        "--reboot",
        "--wait=false",
      ),
      stdout: fx("reset.nowait.txt"),
      ...answer,
    };
  },
  bootstrap(out: string, node: string, answer?: Partial<Recording>): Recording {
    return {
      cmd: T(
        node,
        "bootstrap",
        `--recover-from=${join(out, `db.${node}`, "db")}`,
        "--recover-skip-hash-check",
      ),
      stdout: fx("bootstrap.recover.txt"),
      ...answer,
    };
  },
  members(node: string, fixture: string): Recording {
    return { cmd: T(node, "etcd", "members"), stdout: fx(fixture) };
  },
  /** `etcd status` of one node: its row of a captured table (else the first row, renamed). */
  etcdStatus(node: string, fixture: string): Recording {
    const [header, ...rows] = fx(fixture).split("\n").filter((l) => l.trim() !== "");
    const row = rows.find((r) => r.startsWith(`${node} `)) ?? rows[0].replace(/^\S+/, node);
    return { cmd: T(node, "etcd", "status"), stdout: `${header}\n${row}\n` };
  },
  reboot(node: string): Recording {
    return { cmd: T(node, "reboot", "--wait=false"), stdout: fx("reboot.nowait.txt") };
  },
  addresses(node: string, holder: boolean): Recording {
    return {
      cmd: T(node, "get", "addresses"),
      stdout: holder
        ? fx("get-addresses.vip-holder.txt").replaceAll("192.168.53.11", node)
        : fxFor("get-addresses.no-vip.txt", node),
    };
  },
  /** `get volumestatus ETCD`: a directory under EPHEMERAL, or a dedicated partition. */
  etcdVolume(node: string, type: "directory" | "partition"): Recording {
    return {
      cmd: T(node, "get", "volumestatus", "ETCD"),
      stdout: readFileSync(
        new URL(`../fixtures/talosctl-extra/volumestatus-etcd.${type}.txt`, import.meta.url),
        "utf8",
      ).replaceAll("192.168.53.11", node),
    };
  },
  kubectlAbsent(): Recording {
    return {
      cmd: "kubectl get nodes -o wide",
      stderr: "bash: line 1: kubectl: command not found\n",
      code: 127,
    };
  },
};

/** Pre-flight: every node answers `version` and runs etcd (Running on the broken cluster). */
export const preflightRecs = (nodes = NODES) =>
  nodes.flatMap((n) => [
    { cmd: T(n, "version"), stdout: fxFor("version.txt", n) },
    rec.service(n, "service-etcd.running-ok.txt"),
    rec.etcdVolume(n, "directory"),
  ]);
/** extract on every node. */
export const extractRecs = (out: string, nodes = NODES) => nodes.map((n) => rec.cp(out, n));
/** status on every copy. */
export const statusRecs = (out: string, nodes = NODES) => nodes.map((n) => rec.etcdutl(out, n));
/**
 * The safety step's questions on the seed's incident (consensus lost, the CORRUPT alarm inside
 * the copies), to every node at once: etcd status answers without a leader everywhere, so the
 * alarm list and the members are not asked. The full rebuild is the way back (diagnose:
 * rebuild).
 */
export const brokenClusterRecs = (nodes = NODES) =>
  nodes.map((n) => rec.etcdStatus(n, "../talosctl-triage/etcd-status.no-leader.txt"));
/**
 * A corrupt cluster that keeps its leader: etcd status (the CORRUPT alarm in ERRORS), then
 * the alarm list (CORRUPT) and 3 members, of every node at once.
 */
export const corruptWithLeaderRecs = (nodes = NODES) => [
  ...nodes.map((n) => rec.etcdStatus(n, "etcd-status.corrupt.txt")),
  ...nodes.flatMap((n) => [
    rec.alarms(n, "etcd-alarm-list.corrupt.txt"),
    rec.members(n, "etcd-members.txt"),
  ]),
];
/** The same questions on a healthy cluster: a leader, no alarm, 3 voting members. */
export const healthyClusterRecs = (nodes = NODES) => [
  ...nodes.map((n) => rec.etcdStatus(n, "etcd-status.all-nodes.txt")),
  ...nodes.flatMap((n) => [
    rec.alarms(n, "etcd-alarm-list.empty.txt"),
    rec.members(n, "etcd-members.txt"),
  ]),
];
/** Reset everywhere; each node goes down, then comes back Preparing. */
export const wipeRecs = (nodes = NODES) => [
  ...nodes.map((n) => rec.reset(n)),
  ...nodes.flatMap((n) => [rec.refused(n), rec.service(n, "service-etcd.preparing.txt")]),
];
export const waitRecs = (seed = SEED) => [rec.service(seed, "service-etcd.preparing.txt")];
/** Bootstrap refused once (not available yet), accepted, etcd Running. */
export const bootstrapRecs = (out: string, seed = SEED) => [
  rec.service(seed, "service-etcd.preparing.txt"),
  rec.bootstrap(out, seed, {
    stdout: "",
    stderr: fxFor("bootstrap.not-available.err.txt", seed),
    code: 1,
  }),
  rec.bootstrap(out, seed),
  rec.service(seed, "service-etcd.running-ok.txt"),
];
/** The stale CORRUPT alarm listed, disarmed, gone. */
export const disarmRecs = (seed = SEED) => [
  rec.alarms(seed, "etcd-alarm-list.restored-stale.txt"),
  { cmd: T(seed, "etcd", "alarm", "disarm"), stdout: fxFor("etcd-alarm-disarm.txt", seed) },
  rec.alarms(seed, "etcd-alarm-list.empty.txt"),
];
/**
 * rejoin by default: the seed runs and lists only itself; the first other node is a learner,
 * then healthy; each is then a voter by itself, and nothing is rebooted.
 */
export const rejoinRecs = (seed = SEED, nodes = NODES) => [
  rec.service(seed, "service-etcd.running-ok.txt"), // the seed runs before anything is decided
  rec.members(seed, "etcd-members.seed-only.txt"), // who votes already
  ...nodes.filter((n) => n !== seed).flatMap((n, i) => [
    ...(i === 0 ? [rec.service(n, "service-etcd.running-learner.txt")] : []),
    rec.service(n, "service-etcd.running-ok.joined.txt"),
    rec.members(seed, "etcd-members.txt"),
  ]),
];
/** rejoin --rolling-reboot: each other node rebooted, down, learner, healthy, a voter. */
export const rollingRejoinRecs = (seed = SEED, nodes = NODES) => [
  rec.service(seed, "service-etcd.running-ok.txt"),
  rec.members(seed, "etcd-members.seed-only.txt"),
  ...nodes.filter((n) => n !== seed).flatMap((n) => [
    rec.reboot(n),
    rec.refused(n),
    rec.service(n, "service-etcd.running-learner.txt"),
    rec.service(n, "service-etcd.running-ok.joined.txt"),
    rec.members(seed, "etcd-members.txt"),
  ]),
];
/** Every check passes; kubectl is not installed. */
export const verifyRecs = (seed = SEED, nodes = NODES, vipHolder = SEED) => [
  rec.members(seed, "etcd-members.txt"),
  rec.alarms(seed, "etcd-alarm-list.empty.txt"),
  ...nodes.map((n) => rec.addresses(n, n === vipHolder)),
  rec.kubectlAbsent(),
  rec.kubectlAbsent(),
];
// ---- the after part (fixtures/after/) ----------------------------------------------------

/** The two workers of fixtures/after/ (get members, kubectl get nodes). */
export const W1 = "192.168.53.20";
export const W2 = "192.168.53.21";

/** A captured output of the after part, from fixtures/after/. */
export function afterFx(name: string): string {
  return readFileSync(new URL(`../fixtures/after/${name}`, import.meta.url), "utf8");
}

/** Bytes of a backup as `etcd snapshot` writes them: a db, then the sha256 of it. */
export function snapshotBytes(db: Uint8Array = new Uint8Array(8192)): Uint8Array {
  return Buffer.concat([db, createHash("sha256").update(db).digest()]);
}

/** `kubectl ARGS` answering `answer`. */
export const kubectl = (args: string, answer: Partial<Recording>): Recording => ({
  cmd: `kubectl ${args}`,
  ...answer,
});
export const kubectlAbsent = (args: string) =>
  kubectl(args, { stderr: "bash: line 1: kubectl: command not found\n", code: 127 });
export const kubectlDown = (args: string) =>
  kubectl(args, {
    stderr: "The connection to the server 192.168.53.2:6443 was refused - did you specify " +
      "the right host or port?\n",
    code: 1,
  });

export const afterRec = {
  /**
   * `etcd snapshot OUT/snapshot-<UTC time>.db` on `node` (the name is the run's clock): writes
   * `bytes` where asked and says so as talosctl does. The fake reader reads it as
   * `RESTORED_SNAPSHOT` (tests/replay.ts).
   */
  snapshot(out: string, node = SEED, bytes = snapshotBytes()): Recording {
    const re = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    return {
      cmd: T(node, "etcd", "snapshot", join(out, "snapshot-<UTC time>.db")),
      like: new RegExp(
        `^${re(T(node, "etcd", "snapshot", out))}/snapshot-\\d{8}T\\d{6}Z\\.db$`,
      ),
      effect(cmd) {
        const path = cmd.split(" ").at(-1)!;
        writeFileSync(path, bytes, { mode: 0o600 });
        this.stdout = `etcd snapshot saved to "${path}" (${bytes.length} bytes)\n` +
          "snapshot info: hash 5f8c3a1b, revision 1843530, total keys 8123, total size 48238592\n";
      },
    };
  },
  restart: (w: string): Recording => ({
    cmd: T(w, "service", "kubelet", "restart"),
    stdout: afterFx("service-kubelet-restart.txt").replace("192.168.53.10", w),
  }),
  kubelet: (w: string, file: string): Recording => ({
    cmd: T(w, "service", "kubelet"),
    stdout: afterFx(file).replace(W1, w),
  }),
  members: (node = SEED): Recording => ({
    cmd: T(node, "get", "members"),
    stdout: afterFx("get-members.txt"),
  }),
};

/**
 * Restart `w`, see it starting, then running; with kubectl, the node NotReady once (W1), then
 * Ready.
 */
export function kubeletCycle(w: string, withKubectl: boolean): Recording[] {
  return [
    afterRec.restart(w),
    afterRec.kubelet(w, "service-kubelet.starting.txt"),
    afterRec.kubelet(w, "service-kubelet.running-ok.txt"),
    ...(withKubectl
      ? [
        kubectl("get nodes", {
          stdout: w === W1
            ? afterFx("kubectl-get-nodes.worker-1-notready.txt")
            : afterFx("kubectl-get-nodes.workers.txt"),
        }),
        ...(w === W1
          ? [
            afterRec.kubelet(w, "service-kubelet.running-ok.txt"),
            kubectl("get nodes", { stdout: afterFx("kubectl-get-nodes.workers.txt") }),
          ]
          : []),
      ]
      : []),
  ];
}

/** The pods (three stuck: db-0, api-…, the bare debug-shell) and their events. */
export const podsRecs = (): Recording[] => [
  kubectl("get pods -A -o json", { stdout: afterFx("pods.json") }),
  kubectl("get events -A -o json", { stdout: afterFx("events.json") }),
];

/**
 * The after part at the end of recover: the backup from `node` (its etcd looked at first),
 * the workers (kubectl's nodes; without kubectl, `get members` on `node`), each kubelet
 * restarted and back before the next (none with `kubelets: false`), the stuck pods (not
 * checked without kubectl). `again`: a re-run of a finished one (the backup kept, every
 * kubelet restarted already).
 */
export function afterRecs(
  out: string,
  options: { kubectl?: boolean; kubelets?: boolean; node?: string; again?: boolean } = {},
): Recording[] {
  const { kubectl: k = false, kubelets = true, node = SEED, again = false } = options;
  return [
    ...(again
      ? []
      : [rec.service(node, "service-etcd.running-ok.txt"), afterRec.snapshot(out, node)]),
    k
      ? kubectl("get nodes -o wide", { stdout: afterFx("kubectl-get-nodes-wide.workers.txt") })
      : kubectlAbsent("get nodes -o wide"),
    ...(k ? [] : [afterRec.members(node)]),
    ...(kubelets && !again ? [W1, W2].flatMap((w) => kubeletCycle(w, k)) : []),
    ...(k ? podsRecs() : [kubectlAbsent("get pods -A -o json")]),
  ];
}

/** verify's checks with kubectl answering (the API is back: the nodes table, workers too). */
export const verifyKubectlRecs = () => {
  const nodes = kubectl("get nodes -o wide", {
    stdout: afterFx("kubectl-get-nodes-wide.workers.txt"),
  });
  return [...verifyRecs().slice(0, -2), nodes, { ...nodes }];
};

/**
 * Steps 4-8 of a recovery once every node is wiped: wait, bootstrap, disarm, rejoin, verify;
 * then the after part (`kubectl`: the API answers verify and after).
 */
export const afterWipeRecs = (out: string, options: { kubectl?: boolean } = {}) => [
  ...waitRecs(),
  ...bootstrapRecs(out),
  ...disarmRecs(),
  ...rejoinRecs(),
  ...(options.kubectl ? verifyKubectlRecs() : verifyRecs()),
  ...afterRecs(out, options),
];
/** A whole recovery of the example cluster, from pre-flight to verify and the after part. */
export const fullRecoveryRecs = (out: string, options: { kubectl?: boolean } = {}) => [
  ...preflightRecs(),
  ...extractRecs(out),
  ...statusRecs(out),
  ...brokenClusterRecs(),
  ...wipeRecs(),
  ...afterWipeRecs(out, options),
];
/** A recovery interrupted (Ctrl-C) while bootstrap answers "not available yet". */
export const interruptedAtBootstrap = (out: string, interrupt: () => void) => {
  const boot = bootstrapRecs(out);
  boot[1].effect = interrupt;
  return [
    ...preflightRecs(),
    ...extractRecs(out),
    ...statusRecs(out),
    ...brokenClusterRecs(),
    ...wipeRecs(),
    ...waitRecs(),
    boot[0],
    boot[1],
  ];
};
/** OUT/journal.jsonl as the safety step of wipe leaves it: the seed recorded. */
export function recordSeed(out: string, seed = SEED): void {
  appendFileSync(
    join(out, "journal.jsonl"),
    JSON.stringify({
      ts: "2026-11-24T09:59:00.000Z",
      task: "wipe",
      type: "fact",
      key: "seed",
      value: seed,
    }) +
      "\n",
  );
}

/** A sample of fixtures/talosctl-triage/ (copied from the triage reference). */
export function triageFx(name: string): string {
  return readFileSync(new URL(`../fixtures/talosctl-triage/${name}`, import.meta.url), "utf8");
}

/** `talosctl version` answering for `node`. */
export const versionRec = (node: string): Recording => ({
  cmd: T(node, "version"),
  stdout: fxFor("version.txt", node),
});

/** `cmd` on `node` failing with connection refused (the node is down or rebooting). */
export const unreachableRec = (cmd: string, node: string): Recording => ({
  cmd,
  stderr: fxFor("service-etcd.connection-refused.direct.err.txt", node),
  code: 1,
});

/** `etcd status` of one node: its own row of a triage sample. */
export function triageStatusRec(node: string, sample: string): Recording {
  const [header, ...rows] = triageFx(sample).split("\n").filter((l) => l.trim() !== "");
  const row = rows.find((r) => r.startsWith(`${node} `));
  if (!row) throw new Error(`${sample} has no row for ${node}`);
  return { cmd: T(node, "etcd", "status"), stdout: `${header}\n${row}\n` };
}

/**
 * Waits until the copy `file` is no longer "racily" new (`settlesAt`, at most about a second):
 * from then on, its identity vouches for its sha256.
 */
export async function settled(file: string): Promise<void> {
  const wait = settlesAt(fileTimes(file)!) + 10 - Date.now();
  if (wait > 0) await new Promise((go) => setTimeout(go, wait));
}
