/**
 * Real etcd behind the simulator: each node is an etcd member on 127.0.0.1 with its own
 * client and peer ports (below the ephemeral port range, so no outgoing connection can
 * take them) and its own data dir `LAB/nodes/NODE/etcd`. Members are started detached and
 * stopped by PID; queries go through etcd's JSON gateway.
 */

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type {
  AlarmInfo,
  Answer,
  EtcdBackend,
  EtcdStatusInfo,
  HealthAnswer,
  MemberInfo,
  SnapshotInfo,
} from "./backend.ts";
import { talosUrls } from "./backend.ts";
import { b64, gw, type GwAlarm, type GwMember } from "./gateway.ts";
import { alive, killHard, type Proc, signal, spawnDetached } from "./proc.ts";
import { dataDir, type LabState, nodeDir, type NodeState } from "./state.ts";

const LEARNER_ERROR = "etcdserver: rpc not supported for learner";
/** Entries between raft snapshots (etcd's default is 100 000). */
const SNAPSHOT_COUNT = 100;

function peerUrl(n: NodeState): string {
  return `http://127.0.0.1:${n.peerPort}`;
}

function clientUrl(n: NodeState): string {
  return `http://127.0.0.1:${n.clientPort}`;
}

function logFile(s: LabState, n: NodeState): string {
  mkdirSync(join(s.dir, "logs"), { recursive: true });
  return join(s.dir, "logs", `${n.label}.log`);
}

async function startMember(
  s: LabState,
  n: NodeState,
  initialCluster: string,
  state: "new" | "existing",
  token: string,
  extra: string[] = [],
): Promise<Proc> {
  mkdirSync(nodeDir(s.dir, n.label), { recursive: true });
  const log = logFile(s, n);
  const args = [
    "--name",
    n.name,
    "--data-dir",
    dataDir(s.dir, n.label),
    "--listen-client-urls",
    clientUrl(n),
    "--advertise-client-urls",
    clientUrl(n),
    "--listen-peer-urls",
    peerUrl(n),
    "--initial-advertise-peer-urls",
    peerUrl(n),
    "--initial-cluster",
    initialCluster,
    "--initial-cluster-state",
    state,
    "--initial-cluster-token",
    token,
    "--logger",
    "zap",
    "--log-outputs",
    log,
    // Raft snapshots often: etcd 3.4 knows its peers before replaying its WAL only from a
    // snapshot, and its initial corruption check (`restart`) asks those peers
    "--snapshot-count",
    String(SNAPSHOT_COUNT),
    // the node's machine config (`cluster.etcd.extraArgs`): kept across restarts
    ...(n.quotaBytes ? ["--quota-backend-bytes", String(n.quotaBytes)] : []),
    ...extra,
  ];
  const proc = await spawnDetached(s.dir, "etcd", args, log);
  n.proc = proc;
  return proc;
}

function nodeByPeerUrl(s: LabState, url: string | undefined): NodeState | undefined {
  return s.nodes.find((n) => url === peerUrl(n));
}

function answer<T>(r: Awaited<ReturnType<typeof gw>>, map: (b: Record<string, unknown>) => T) {
  return r.ok
    ? { ok: true as const, value: map(r.body) }
    : { ok: false as const, error: r.error, transient: r.transport };
}

async function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  const o = await new Deno.Command(cmd, {
    args,
    env: { ETCDCTL_API: "3" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: o.code, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
}

/** The line etcdctl ends with on failure, without its `Error: ` prefix. */
function etcdctlError(out: string): string {
  const lines = out.trim().split("\n");
  const err = lines.find((l) => l.startsWith("Error: ")) ??
    lines.find((l) => l.startsWith("panic: ")) ?? lines[lines.length - 1] ?? "";
  return err.replace(/^Error: /, "");
}

function restoreArgs(
  s: LabState,
  n: NodeState,
  snapshot: string,
  skipHashCheck: boolean,
  token: string,
): string[] {
  return [
    "snapshot",
    "restore",
    snapshot,
    ...(skipHashCheck ? ["--skip-hash-check"] : []),
    "--data-dir",
    dataDir(s.dir, n.label),
    "--name",
    n.name,
    "--initial-cluster",
    `${n.name}=${peerUrl(n)}`,
    "--initial-advertise-peer-urls",
    peerUrl(n),
    "--initial-cluster-token",
    token,
  ];
}

export const etcdBackend: EtcdBackend = {
  async startCluster(s, token) {
    const initial = s.nodes.map((n) => `${n.name}=${peerUrl(n)}`).join(",");
    for (const n of s.nodes) await startMember(s, n, initial, "new", token);
    const until = Date.now() + 20_000;
    for (const n of s.nodes) {
      while (true) {
        const r = await gw(n.clientPort, "maintenance/status", {});
        if (r.ok && r.body.leader && r.body.leader !== "0") {
          const header = r.body.header as { member_id: string };
          n.member = { id: header.member_id, cluster: token, learner: false };
          break;
        }
        if (Date.now() > until || !alive(n.proc)) {
          throw new Error(`etcd of ${n.label} did not come up; see ${logFile(s, n)}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  },

  async restart(s, n) {
    await killHard(n.proc);
    // On its own data, etcd first compares its hash of the key history with its peers'
    // (etcd 3.6 does so by default): a member whose data differs refuses to start.
    const proc = await startMember(s, n, `${n.name}=${peerUrl(n)}`, "existing", "restart", [
      "--experimental-initial-corrupt-check",
    ]);
    return proc.pid;
  },

  async restore(s, n, snapshot, skipHashCheck, token) {
    await killHard(n.proc);
    mkdirSync(nodeDir(s.dir, n.label), { recursive: true });
    let id: string | undefined;
    if (snapshot !== "") {
      const r = await run("etcdctl", restoreArgs(s, n, snapshot, skipHashCheck, token));
      if (r.code !== 0) return { error: etcdctlError(r.out) };
      id = r.out.match(/"added-peer-id":"([0-9a-f]+)"/)?.[1];
    }
    const proc = await startMember(s, n, `${n.name}=${peerUrl(n)}`, "new", token);
    n.member = { id: id ? BigInt(`0x${id}`).toString() : "0", cluster: token, learner: false };
    if (!id) {
      // Not in the restore log (or a plain bootstrap): ask the member once it answers.
      const until = Date.now() + 10_000;
      while (Date.now() < until) {
        const st = await gw(n.clientPort, "maintenance/status", {});
        if (st.ok) {
          n.member.id = (st.body.header as { member_id: string }).member_id;
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return { pid: proc.pid };
  },

  async join(s, n, via) {
    // An earlier attempt may have been added although its answer never came (a timeout):
    // then the member is already listed with this node's peer URL, and is reused.
    const list = await gw(via.clientPort, "cluster/member/list", {}, 5_000);
    if (!list.ok) return { error: list.error };
    let members = (list.body.members ?? []) as GwMember[];
    // Talos (`addMember`): a member with this node's hostname is its old self: removed first.
    for (const old of members.filter((m) => m.name === n.name)) {
      const r = await gw(via.clientPort, "cluster/member/remove", { ID: old.ID }, 5_000);
      if (!r.ok) return { error: `failed to remove member ${old.ID}: ${r.error}` };
      if (!old.isLearner) s.voters[via.member!.cluster] = (s.voters[via.member!.cluster] ?? 1) - 1;
      members = (r.body.members ?? []) as GwMember[];
    }
    let added = members.find((m) => m.peerURLs?.includes(peerUrl(n)));
    if (added && !added.isLearner && added.name) {
      // A voter that already ran: with an empty data dir it must be removed first.
      return { error: "etcdserver: Peer URLs already exists" };
    }
    if (!added) {
      const r = await gw(via.clientPort, "cluster/member/add", {
        peerURLs: [peerUrl(n)],
        isLearner: true,
      }, 5_000);
      if (!r.ok) return { error: r.error };
      added = r.body.member as GwMember;
      members = (r.body.members ?? []) as GwMember[];
    }
    const initial = members.map((m) => {
      const url = m.peerURLs?.[0] ?? "";
      const owner = nodeByPeerUrl(s, url);
      return `${owner?.name ?? m.name ?? `m${m.ID}`}=${url}`;
    }).join(",");
    await killHard(n.proc);
    const proc = await startMember(s, n, initial, "existing", "join");
    n.member = { id: added.ID, cluster: via.member!.cluster, learner: added.isLearner === true };
    return { pid: proc.pid };
  },

  async removeMember(_s, n, id) {
    const r = await gw(n.clientPort, "cluster/member/remove", { ID: id }, 10_000);
    return r.ok ? undefined : r.error;
  },

  async defrag(_s, n) {
    const r = await run("etcdctl", ["--endpoints", clientUrl(n), "defrag"]);
    return r.code === 0 ? undefined : etcdctlError(r.out);
  },

  async promote(_s, n, via) {
    const r = await gw(via.clientPort, "cluster/member/promote", { ID: n.member!.id });
    return r.ok ? undefined : r.error;
  },

  async stop(_s, n, hard) {
    if (hard) {
      await killHard(n.proc);
      n.proc = undefined;
    } else {
      signal(n.proc, "SIGTERM");
    }
  },

  running(_s, n) {
    return alive(n.proc);
  },

  async health(_s, n): Promise<HealthAnswer> {
    if (n.member?.learner) return { ok: false, message: LEARNER_ERROR, transient: false };
    const r = await gw(n.clientPort, "kv/range", { key: b64("health") });
    if (r.ok) return { ok: true };
    return { ok: false, message: r.error, transient: true };
  },

  async alarms(_s, n): Promise<Answer<AlarmInfo[]>> {
    const r = await gw(n.clientPort, "maintenance/alarm", { action: "GET" });
    // the gateway leaves out zero fields: etcd 3.5's CORRUPT alarm names member 0
    return answer(r, (b) =>
      ((b.alarms ?? []) as Partial<GwAlarm>[]).map((a) => ({
        memberID: a.memberID ?? "0",
        alarm: a.alarm ?? "NONE",
      })));
  },

  async disarm(s, n): Promise<Answer<AlarmInfo[]>> {
    const list = await this.alarms(s, n);
    if (!list.ok) return list;
    for (const a of list.value) {
      const r = await gw(n.clientPort, "maintenance/alarm", {
        action: "DEACTIVATE",
        memberID: a.memberID,
        alarm: a.alarm,
      });
      if (!r.ok) return { ok: false, error: r.error, transient: r.transport };
    }
    return list;
  },

  async status(_s, n): Promise<Answer<EtcdStatusInfo>> {
    const r = await gw(n.clientPort, "maintenance/status", {});
    return answer(r, (b) => {
      const version = String(b.version ?? "");
      return {
        memberId: (b.header as { member_id: string }).member_id,
        dbSize: Number(b.dbSize ?? 0),
        dbSizeInUse: Number(b.dbSizeInUse ?? 0),
        leader: String(b.leader ?? "0"),
        raftIndex: Number(b.raftIndex ?? 0),
        raftTerm: Number(b.raftTerm ?? 0),
        raftAppliedIndex: Number(b.raftAppliedIndex ?? 0),
        learner: b.isLearner === true,
        protocol: version,
        storage: version.split(".").slice(0, 2).join(".") + ".0",
        errors: (b.errors ?? []) as string[],
      };
    });
  },

  async members(s, n): Promise<Answer<MemberInfo[]>> {
    const r = await gw(n.clientPort, "cluster/member/list", {});
    return answer(r, (b) =>
      ((b.members ?? []) as GwMember[]).map((m) => {
        const owner = nodeByPeerUrl(s, m.peerURLs?.[0]);
        const urls = owner ? talosUrls(owner) : undefined;
        return {
          id: m.ID,
          name: m.name ?? "",
          peerUrls: urls ? [urls.peer] : (m.peerURLs ?? []),
          clientUrls: (m.clientURLs ?? []).length === 0 ? [] : urls ? [urls.client] : m.clientURLs!,
          learner: m.isLearner === true,
        };
      }));
  },

  async snapshotStatus(path): Promise<SnapshotInfo | { error: string; code: number }> {
    const r = await run("etcdctl", ["snapshot", "status", path, "-w", "json"]);
    if (r.code !== 0) return { error: etcdctlError(r.out), code: r.code };
    const num = (k: string) => Number(r.out.match(new RegExp(`"${k}":(\\d+)`))?.[1] ?? NaN);
    return {
      hash: num("hash"),
      revision: num("revision"),
      totalKey: num("totalKey"),
      totalSize: num("totalSize"),
    };
  },
};
