/**
 * etcd modelled in the state file, for machines without etcd: clusters with members,
 * learners, alarms and a revision; each node's `member/snap/db` is a real db file copied
 * from `fixtures/sim/` (so `cp` copies a real file either way), and the restored cluster
 * takes its revision and alarms from the fixture the snapshot is a copy of.
 */

import { copyFileSync, mkdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import type { EtcdBackend, MemberInfo, SnapshotInfo } from "./backend.ts";
import { talosUrls } from "./backend.ts";
import { fixtureManifest, fixtureOf, fixturePath } from "./fixtures.ts";
import { dataDir, dbPath, type LabState, type ModelCluster, type NodeState } from "./state.ts";

const LEARNER_ERROR = "etcdserver: rpc not supported for learner";

/** A random 64-bit member ID, decimal. */
export function randomId(): string {
  const b = crypto.getRandomValues(new Uint8Array(8));
  b[0] |= 0x10;
  return BigInt("0x" + [...b].map((x) => x.toString(16).padStart(2, "0")).join("")).toString();
}

function fakePid(): number {
  return 2000 + Math.floor(Math.random() * 2000);
}

function cluster(s: LabState, n: NodeState): ModelCluster {
  const c = n.member && s.clusters[n.member.cluster];
  if (!c) throw new Error(`model: node ${n.label} has no cluster`);
  return c;
}

/** Replaces every running member's db file of `token` with fixture `name`. */
export function setClusterFixture(s: LabState, token: string, name: string): void {
  const c = s.clusters[token];
  const f = fixtureManifest().files[name];
  c.fixture = name;
  c.revision = f.revision;
  c.raftIndex = Math.max(c.raftIndex, f.revision + 8);
  for (const n of s.nodes) {
    if (n.member?.cluster === token && n.phase === "running" && n.proc) {
      copyInto(fixturePath(name), dbPath(s.dir, n.label));
    }
  }
}

function copyInto(from: string, to: string): void {
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(from, to);
}

export const modelBackend: EtcdBackend = {
  startCluster(s, token) {
    const fx = fixtureManifest();
    const members = s.nodes.map((n, i) => ({
      id: fx.members[i] ?? randomId(),
      node: n.label,
      name: n.name,
      learner: false,
    }));
    s.clusters[token] = {
      members,
      alarms: [],
      revision: fx.files["fresh.db"].revision,
      raftIndex: 8,
      raftTerm: 2,
      leader: members[0].id,
      fixture: "fresh.db",
    };
    for (const [i, n] of s.nodes.entries()) {
      copyInto(fixturePath("fresh.db"), dbPath(s.dir, n.label));
      n.member = { id: members[i].id, cluster: token, learner: false };
      n.proc = { pid: fakePid(), start: "model" };
    }
    return Promise.resolve();
  },

  restart(_s, n) {
    n.proc = { pid: fakePid(), start: "model" };
    return Promise.resolve(n.proc.pid);
  },

  async restore(s, n, snapshot, skipHashCheck, token) {
    mkdirSync(join(dataDir(s.dir, n.label), "member", "snap"), { recursive: true });
    if (snapshot === "") snapshot = fixturePath("fresh.db");
    const size = statSync(snapshot).size;
    if (!skipHashCheck && size % 512 !== 32 && snapshot !== fixturePath("fresh.db")) {
      return { error: "snapshot missing hash but --skip-hash-check=false" };
    }
    const fx = await fixtureOf(snapshot);
    if (!fx) return { error: "invalid database" };
    copyInto(snapshot, dbPath(s.dir, n.label));
    const id = randomId();
    s.clusters[token] = {
      members: [{ id, node: n.label, name: n.name, learner: false }],
      alarms: fx[1].alarms.map((a) => ({ ...a })),
      revision: fx[1].revision,
      raftIndex: 1,
      raftTerm: 2,
      leader: id,
      fixture: fx[0],
    };
    n.member = { id, cluster: token, learner: false };
    n.proc = { pid: fakePid(), start: "model" };
    return { pid: n.proc.pid };
  },

  join(s, n, via) {
    const c = cluster(s, via);
    // Talos (`addMember`): a member with this node's hostname is its old self: removed first.
    const old = c.members.filter((m) => m.name === n.name);
    c.members = c.members.filter((m) => m.name !== n.name);
    const token = via.member!.cluster;
    s.voters[token] = (s.voters[token] ?? 0) - old.filter((m) => !m.learner).length;
    if (c.members.some((m) => m.node === n.label)) {
      return Promise.resolve({ error: "etcdserver: Peer URLs already exists" });
    }
    if (c.members.some((m) => m.learner)) {
      return Promise.resolve({ error: "etcdserver: too many learner members in cluster" });
    }
    const id = randomId();
    c.members.push({ id, node: n.label, name: n.name, learner: true });
    c.raftIndex += 1;
    copyInto(dbPath(s.dir, via.label), dbPath(s.dir, n.label));
    n.member = { id, cluster: via.member!.cluster, learner: true };
    n.proc = { pid: fakePid(), start: "model" };
    return Promise.resolve({ pid: n.proc.pid });
  },

  removeMember(s, n, id) {
    const c = cluster(s, n);
    const m = c.members.find((x) => x.id === id);
    if (!m) return Promise.resolve("etcdserver: member not found");
    const runs = (node: string) => s.nodes.find((x) => x.label === node)?.proc !== undefined;
    const voters = c.members.filter((x) => !x.learner);
    // etcd's strict reconfig check: a down member may go; a running voter only if the
    // members still connected after its removal keep a quorum
    const active = voters.filter((x) => runs(x.node)).length;
    if (!m.learner && runs(m.node) && active - 1 < 1 + Math.floor((voters.length - 1) / 2)) {
      return Promise.resolve("etcdserver: unhealthy cluster");
    }
    c.members = c.members.filter((x) => x.id !== id);
    c.raftIndex += 1;
    return Promise.resolve(undefined);
  },

  defrag() {
    return Promise.resolve(undefined);
  },

  promote(s, n, via) {
    const c = cluster(s, via);
    const m = c.members.find((x) => x.id === n.member?.id);
    if (!m) return Promise.resolve("etcdserver: member not found");
    m.learner = false;
    c.raftIndex += 1;
    return Promise.resolve(undefined);
  },

  stop(_s, n) {
    n.proc = undefined;
    return Promise.resolve();
  },

  running(_s, n) {
    return n.proc !== undefined;
  },

  health(_s, n) {
    if (n.member?.learner) {
      return Promise.resolve({ ok: false, message: LEARNER_ERROR, transient: false });
    }
    return Promise.resolve({ ok: true });
  },

  alarms(s, n) {
    if (n.member?.learner) {
      return Promise.resolve({ ok: false, error: LEARNER_ERROR, transient: false });
    }
    return Promise.resolve({ ok: true, value: cluster(s, n).alarms.map((a) => ({ ...a })) });
  },

  disarm(s, n) {
    if (n.member?.learner) {
      return Promise.resolve({ ok: false, error: LEARNER_ERROR, transient: false });
    }
    const c = cluster(s, n);
    const list = c.alarms;
    c.alarms = [];
    return Promise.resolve({ ok: true, value: list });
  },

  status(s, n) {
    const c = cluster(s, n);
    // Status needs no quorum: without a majority of voters running, etcd names no leader and
    // says so in its errors, before the alarms (etcd's maintenance Status).
    const voters = c.members.filter((m) => !m.learner);
    const up = voters.filter((m) => s.nodes.find((x) => x.label === m.node)?.proc !== undefined);
    const led = up.length * 2 > voters.length;
    let size = 0;
    try {
      size = statSync(dbPath(s.dir, n.label)).size;
    } catch {
      // no file: size 0
    }
    return Promise.resolve({
      ok: true,
      value: {
        memberId: n.member!.id,
        dbSize: size,
        dbSizeInUse: Math.floor(size * 0.93),
        leader: led ? c.leader : "0",
        raftIndex: c.raftIndex,
        raftTerm: c.raftTerm,
        raftAppliedIndex: c.raftIndex,
        learner: n.member!.learner,
        protocol: "3.4.23",
        storage: "3.4.0",
        errors: [
          ...(led ? [] : ["etcdserver: no leader"]),
          ...c.alarms.map((a) => `memberID:${a.memberID} alarm:${a.alarm} `),
        ],
      },
    });
  },

  members(s, n) {
    if (n.member?.learner) {
      return Promise.resolve({ ok: false, error: LEARNER_ERROR, transient: false });
    }
    const c = cluster(s, n);
    const value: MemberInfo[] = c.members.map((m) => {
      const owner = s.nodes.find((x) => x.label === m.node)!;
      const urls = talosUrls(owner);
      return {
        id: m.id,
        name: m.name,
        peerUrls: [urls.peer],
        clientUrls: [urls.client],
        learner: m.learner,
      };
    });
    return Promise.resolve({ ok: true, value });
  },

  async snapshotStatus(path): Promise<SnapshotInfo | { error: string; code: number }> {
    try {
      statSync(path);
    } catch {
      return { error: `stat ${path}: no such file or directory`, code: 1 };
    }
    const fx = await fixtureOf(path);
    if (!fx) return { error: "invalid database", code: 1 };
    const { hash, revision, totalKey, totalSize } = fx[1];
    return { hash, revision, totalKey, totalSize };
  },
};

/** The backend a lab was made with. */
export async function backendOf(s: LabState) {
  if (s.backend === "model") return modelBackend;
  return (await import("./backend_etcd.ts")).etcdBackend;
}
