/**
 * Generates fixtures/db/: real etcd db files, made by a real etcd (3.4 from Debian) on
 * 127.0.0.1, with the `etcdctl snapshot status -w json|table` output each must match.
 *
 * What it makes (each etcd runs in a temp dir on ports 42379/42380 and is stopped by its PID,
 * even on failure or Ctrl-C):
 * - `etcd-3.4.db`: raw copy of `member/snap/db` after puts, overwrites, deletes, a leased key,
 *   a compaction, values of 5–20 KiB (overflow pages), more writes, then a CORRUPT and a
 *   NOSPACE alarm; `etcd-3.4.snapshot.db`: `etcdctl snapshot save` of the same member
 *   (db + 32-byte sha256); `etcd-3.4.fresh.db`: a member that never had a write.
 * - `history-a.rev31.db`, `history-a.rev41.db`: two copies of one cluster at revisions 31 and 41;
 *   `history-b.rev36.db`, `history-b.rev46.db`: another cluster with the same first 20 writes,
 *   then other values (its history diverges after revision 21).
 * - `compact-*.db`, copies whose compactions differ (see {@linkcode compactionScenario}):
 *   cluster p copied at revisions 26, 31, 36 (never compacted) and at 41 after a compaction at
 *   31 (`compact-p.rev41.c31.db`); cluster q, with p's first 20 writes then others, at 46 and,
 *   compacted at 26, at 51; an unrelated cluster at 60, compacted at 20. Their `expect.json`
 *   holds etcd's `HashKV` after each compaction (`hashKVCompacted`: revision → hash).
 * - For each `X.db`: `X.status.{json,table,simple}.txt` (etcdctl, verbatim), and
 *   `X.expect.json` (what the server said: revision, live keys, members, alarms, `HashKV`…).
 *
 * Usage: deno run --allow-run --allow-read --allow-write --allow-env --allow-net=127.0.0.1 \
 *   scripts/gen_db_fixtures.ts [OUT_DIR] [SCENARIO…]   (default: fixtures/db; every scenario:
 *   main, history, compaction; naming some regenerates only their files)
 */

import { Buffer } from "node:buffer";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { pickPorts } from "../lib/sim/ports.ts";

export const CLIENT_PORT = 42379;
/** How long etcd may take to answer after start. */
const READY_TIMEOUT_MS = 20_000;
/** Longer than etcd's backend commit interval (100 ms), so a raw copy holds every write. */
export const COMMIT_WAIT_MS = 300;

/** Members started and not yet stopped (stopped on Ctrl-C by `stopOnSignal`). */
const running = new Set<Etcd>();

/** On SIGINT/SIGTERM: stop every member this process started (by PID), then exit 130. */
export function stopOnSignal(): void {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, async () => {
      await Promise.all([...running].map((e) => e.stop()));
      Deno.exit(130);
    });
  }
}

/** A running etcd member, stopped by its PID. */
export interface Etcd {
  pid: number;
  url: string;
  dataDir: string;
  dbPath: string;
  gateway: Gateway;
  /** SIGKILL by PID, then reap. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Starts one etcd member in `dir` on 127.0.0.1 and waits until it answers. Ports: the fixed
 * fixture ports (the member's URLs are recorded in the fixtures), or `ports: "free"` for two
 * free ones below the ephemeral range (tests and benches).
 */
export async function startEtcd(
  dir: string,
  opts: { name?: string; token?: string; ports?: "fixture" | "free"; args?: string[] } = {},
): Promise<Etcd> {
  const name = opts.name ?? "m1";
  const base = opts.ports === "free" ? pickPorts(2) : CLIENT_PORT;
  const client = `http://127.0.0.1:${base}`;
  const peer = `http://127.0.0.1:${base + 1}`;
  const dataDir = join(dir, name);
  mkdirSync(dir, { recursive: true });
  const log = await Deno.open(join(dir, `${name}.log`), {
    write: true,
    create: true,
    append: true,
  });
  const child = new Deno.Command("etcd", {
    args: [
      "--name",
      name,
      "--data-dir",
      dataDir,
      "--listen-client-urls",
      client,
      "--advertise-client-urls",
      client,
      "--listen-peer-urls",
      peer,
      "--initial-advertise-peer-urls",
      peer,
      "--initial-cluster",
      `${name}=${peer}`,
      "--initial-cluster-state",
      "new",
      "--initial-cluster-token",
      opts.token ?? "fixture",
      "--logger",
      "zap",
      "--log-outputs",
      "stderr",
      ...(opts.args ?? []),
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const logged = child.stderr.pipeTo(log.writable).catch(() => {});
  let exited: Deno.CommandStatus | undefined;
  child.status.then((s) => exited = s);
  let stopped = false;
  const etcd: Etcd = {
    pid: child.pid,
    url: client,
    dataDir,
    dbPath: join(dataDir, "member", "snap", "db"),
    gateway: new Gateway(client),
    async stop() {
      if (stopped) return;
      stopped = true;
      running.delete(etcd);
      try {
        Deno.kill(child.pid, "SIGKILL");
      } catch {
        // already gone
      }
      await child.status;
      await logged;
    },
  };
  running.add(etcd);
  try {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      try {
        await etcd.gateway.post("/v3/maintenance/status", {}, 1_000);
        return etcd;
      } catch (error) {
        if (exited) {
          await logged;
          const tail = Deno.readTextFileSync(join(dir, `${name}.log`)).trim().split("\n").slice(-5);
          throw new Error(
            `etcd on ${client} exited (code ${exited.code}) before it answered; its log ends:\n` +
              tail.join("\n"),
          );
        }
        if (Date.now() > deadline) {
          throw new Error(
            `etcd did not answer on ${client} within ${READY_TIMEOUT_MS} ms (log: ${dir}/${name}.log)`,
            { cause: error },
          );
        }
        await sleep(100);
      }
    }
  } catch (error) {
    await etcd.stop();
    throw error;
  }
}

/** etcd's JSON gateway (`/v3/…`), over one keep-alive connection. */
export class Gateway {
  constructor(readonly url: string) {}

  /** One request; it fails after `timeoutMs` rather than wait on a port that never answers. */
  async post(path: string, body: unknown, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    const res = await fetch(`${this.url}${path}`, {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "content-type": "application/json" },
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`POST ${path}: HTTP ${res.status}: ${text}`);
    return JSON.parse(text);
  }

  /** Puts and returns the new revision. */
  async put(key: string, value: string | Uint8Array, lease?: string): Promise<number> {
    const r = await this.post("/v3/kv/put", { key: b64(key), value: b64(value), lease });
    return Number((r.header as { revision: string }).revision);
  }

  /** Several puts in one transaction (one revision). */
  async putMany(pairs: [string, string | Uint8Array][]): Promise<void> {
    await this.post("/v3/kv/txn", {
      success: pairs.map(([k, v]) => ({ request_put: { key: b64(k), value: b64(v) } })),
    });
  }

  async del(key: string): Promise<void> {
    await this.post("/v3/kv/deleterange", { key: b64(key) });
  }

  async compact(revision: number): Promise<void> {
    await this.post("/v3/kv/compaction", { revision: String(revision), physical: true });
  }

  async leaseGrant(ttl: number): Promise<string> {
    return String((await this.post("/v3/lease/grant", { TTL: String(ttl) })).ID);
  }

  async memberId(): Promise<string> {
    const r = await this.post("/v3/maintenance/status", {});
    return (r.header as { member_id: string }).member_id;
  }

  async alarm(action: "ACTIVATE" | "GET", memberID?: string, alarm?: string): Promise<unknown[]> {
    const r = await this.post("/v3/maintenance/alarm", { action, memberID, alarm });
    return (r.alarms as unknown[] | undefined) ?? [];
  }

  /** etcd's own `HashKV` at `revision` (`etcdctl endpoint hashkv`: 3.4's gateway has none). */
  async hashKV(revision: number): Promise<number> {
    const out = await etcdctl([
      "--endpoints",
      this.url,
      "endpoint",
      "hashkv",
      "--rev",
      String(revision),
      "-w",
      "json",
    ]);
    const hash = out.match(/"hash":(\d+)/)?.[1];
    if (hash === undefined) throw new Error(`No hash in etcdctl endpoint hashkv output: ${out}`);
    return Number(hash);
  }

  /** What the server holds now: revision, live keys, members, alarms, raft index. */
  async facts(): Promise<Record<string, unknown>> {
    const range = await this.post("/v3/kv/range", {
      key: b64("\0"),
      range_end: b64("\0"),
      count_only: true,
    });
    const status = await this.post("/v3/maintenance/status", {});
    const members = await this.post("/v3/cluster/member/list", {});
    return {
      revision: Number((range.header as { revision: string }).revision),
      liveKeys: Number(range.count ?? 0),
      raftIndex: Number(status.raftIndex),
      raftTerm: Number(status.raftTerm),
      memberId: (status.header as { member_id: string }).member_id,
      members: members.members,
      alarms: await this.alarm("GET"),
    };
  }
}

function b64(v: string | Uint8Array): string {
  return (typeof v === "string" ? Buffer.from(v, "latin1") : Buffer.from(v)).toString("base64");
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs `etcdctl` with ETCDCTL_API=3; returns stdout, throws with stderr on failure. */
export async function etcdctl(args: string[]): Promise<string> {
  const out = await new Deno.Command("etcdctl", {
    args,
    env: { ETCDCTL_API: "3" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  if (!out.success) {
    throw new Error(`etcdctl ${args.join(" ")}: exit ${out.code}: ${text.decode(out.stderr)}`);
  }
  return text.decode(out.stdout);
}

/** Copies a db file out of a running member, after the backend's commit interval. */
export async function copyDb(from: string, to: string): Promise<void> {
  await sleep(COMMIT_WAIT_MS);
  copyFileSync(from, to);
  Deno.chmodSync(to, 0o644); // etcd's 0600 would follow the copy
}

/** Writes `X.status.json.txt` and `X.status.table.txt` for `X.db`. */
export async function recordStatus(db: string): Promise<void> {
  const base = db.replace(/\.db$/, "");
  writeFileSync(`${base}.status.json.txt`, await etcdctl(["snapshot", "status", db, "-w", "json"]));
  writeFileSync(
    `${base}.status.table.txt`,
    await etcdctl(["snapshot", "status", db, "-w", "table"]),
  );
  writeFileSync(`${base}.status.simple.txt`, await etcdctl(["snapshot", "status", db]));
}

function writeFacts(db: string, facts: Record<string, unknown>): void {
  writeFileSync(db.replace(/\.db$/, ".expect.json"), JSON.stringify(facts, null, 2) + "\n");
}

const pad = (n: number, w = 3) => String(n).padStart(w, "0");

/** The main fixture: every kind of entry etcd writes. */
async function mainScenario(dir: string, out: string): Promise<void> {
  const etcd = await startEtcd(dir);
  try {
    const gw = etcd.gateway;
    await copyDb(etcd.dbPath, join(out, "etcd-3.4.fresh.db"));
    writeFacts(join(out, "etcd-3.4.fresh.db"), await gw.facts());
    for (let i = 0; i < 300; i++) {
      await gw.put(`/registry/demo/key-${pad(i)}`, `value ${i} `.padEnd(60, "."));
    }
    for (let i = 0; i < 100; i++) await gw.put(`/registry/demo/key-${pad(i)}`, `value ${i} v2`);
    const compactAt = await gw.put("/registry/demo/marker", "before compaction");
    for (let i = 250; i < 300; i++) await gw.del(`/registry/demo/key-${pad(i)}`);
    for (const [i, size] of [5_000, 9_000, 20_000].entries()) {
      await gw.put(`/registry/big/${i}`, "x".repeat(size));
    }
    await gw.put("/registry/big/0", "y".repeat(12_000));
    const lease = await gw.leaseGrant(3600);
    await gw.put("/registry/leases/held", "held by a lease", lease);
    await gw.compact(compactAt);
    for (let i = 0; i < 20; i++) await gw.put(`/registry/late/${pad(i)}`, `late ${i}`);
    for (let i = 0; i < 5; i++) await gw.del(`/registry/late/${pad(i)}`);
    const member = await gw.memberId();
    await gw.alarm("ACTIVATE", member, "CORRUPT");
    await gw.alarm("ACTIVATE", member, "NOSPACE");
    const raw = join(out, "etcd-3.4.db");
    await copyDb(etcd.dbPath, raw);
    const snapshot = join(out, "etcd-3.4.snapshot.db");
    await etcdctl(["--endpoints", etcd.url, "snapshot", "save", snapshot]);
    Deno.chmodSync(snapshot, 0o644);
    const facts = { ...await gw.facts(), compactRevision: compactAt, lease };
    writeFacts(raw, facts);
    writeFacts(snapshot, facts);
  } finally {
    await etcd.stop();
  }
}

/** Two clusters with the same first 20 writes, then different ones; two copies of each. */
async function historyScenario(dir: string, out: string, cluster: "a" | "b"): Promise<void> {
  const etcd = await startEtcd(join(dir, cluster), { name: "h", token: "history" });
  try {
    const gw = etcd.gateway;
    const value = (i: number) => (i < 20 || cluster === "a" ? `a-${i}` : `b-${i}`);
    const first = cluster === "a" ? 30 : 35;
    for (let i = 0; i < first; i++) await gw.put(`/h/k${pad(i, 2)}`, value(i));
    const early = join(out, `history-${cluster}.rev${first + 1}.db`);
    await copyDb(etcd.dbPath, early);
    writeFacts(early, { ...await gw.facts(), hashKV: await gw.hashKV(first + 1) });
    for (let i = first; i < first + 10; i++) await gw.put(`/h/k${pad(i, 2)}`, value(i));
    const late = join(out, `history-${cluster}.rev${first + 11}.db`);
    await copyDb(etcd.dbPath, late);
    writeFacts(late, {
      ...await gw.facts(),
      hashKV: await gw.hashKV(first + 11),
      hashKVat21: await gw.hashKV(21),
    });
  } finally {
    await etcd.stop();
  }
}

/**
 * Copies with different compactions, from real etcd. Cluster p: 20 keys (revisions 2-21), then
 * overwrites, two deletions and new keys (22-31), copied at 26 and 31; overwrites (32-36),
 * copied at 36; new keys (37-41), then a compaction at 31, copied at 41 (`c31`): its entries
 * at or below 31 are only what the compaction kept. Cluster q: p's first 20 writes, then other
 * values, copied at 46 and, compacted at 26, at 51. Cluster o: other keys altogether, compacted
 * at 20, copied at 60. Each compacted copy records etcd's own HashKV at a few revisions.
 */
async function compactionScenario(dir: string, out: string): Promise<void> {
  const copy = async (gw: Gateway, dbPath: string, name: string, hashAt: number[] = []) => {
    const file = join(out, `${name}.db`);
    await copyDb(dbPath, file);
    const hashKVCompacted: Record<string, number> = {};
    for (const r of hashAt) hashKVCompacted[r] = await gw.hashKV(r);
    writeFacts(file, { ...await gw.facts(), ...(hashAt.length ? { hashKVCompacted } : {}) });
  };
  const compact = async (gw: Gateway, revision: number) => {
    await gw.compact(revision);
    await sleep(COMMIT_WAIT_MS); // the compaction runs after the call returns
  };
  const k = (i: number) => `/c/k${pad(i, 2)}`;
  for (const cluster of ["p", "q"] as const) {
    const etcd = await startEtcd(join(dir, cluster), { name: cluster, token: "compaction" });
    try {
      const gw = etcd.gateway;
      for (let i = 0; i < 20; i++) await gw.put(k(i), `first ${i}`); // 2-21
      const mine = (i: number) => `${cluster} ${i}`;
      for (let i = 0; i < 5; i++) await gw.put(k(i), mine(i)); // 22-26
      if (cluster === "p") await copy(gw, etcd.dbPath, "compact-p.rev26");
      await gw.del(k(5)); // 27
      await gw.del(k(6)); // 28
      await gw.put(k(20), mine(20)); // 29
      await gw.put(k(21), mine(21)); // 30
      await gw.put(k(7), mine(7)); // 31
      if (cluster === "p") await copy(gw, etcd.dbPath, "compact-p.rev31");
      for (let i = 8; i < 13; i++) await gw.put(k(i), mine(i)); // 32-36
      if (cluster === "p") await copy(gw, etcd.dbPath, "compact-p.rev36");
      for (let i = 22; i < 27; i++) await gw.put(k(i), mine(i)); // 37-41
      if (cluster === "p") {
        await compact(gw, 31);
        await copy(gw, etcd.dbPath, "compact-p.rev41.c31", [32, 36, 41]);
        continue;
      }
      for (let i = 0; i < 5; i++) await gw.put(k(i), `${mine(i)} again`); // 42-46
      await copy(gw, etcd.dbPath, "compact-q.rev46");
      await compact(gw, 26);
      for (let i = 27; i < 32; i++) await gw.put(k(i), mine(i)); // 47-51
      await copy(gw, etcd.dbPath, "compact-q.rev51.c26", [27, 51]);
    } finally {
      await etcd.stop();
    }
  }
  const etcd = await startEtcd(join(dir, "o"), { name: "o", token: "other" });
  try {
    const gw = etcd.gateway;
    for (let i = 0; i < 59; i++) await gw.put(`/other/${pad(i % 23, 2)}`, `other ${i}`); // 2-60
    await compact(gw, 20);
    await copy(gw, etcd.dbPath, "compact-o.rev60.c20", [21, 60]);
  } finally {
    await etcd.stop();
  }
}

const SCENARIOS: Record<string, (dir: string, out: string) => Promise<void>> = {
  main: (dir, out) => mainScenario(join(dir, "main"), out),
  history: async (dir, out) => {
    await historyScenario(dir, out, "a");
    await historyScenario(dir, out, "b");
  },
  compaction: (dir, out) => compactionScenario(join(dir, "compaction"), out),
};

async function main(args: string[]): Promise<void> {
  const root = join(dirname(fileURLToPath(import.meta.url)), "..");
  const out = args[0] ?? join(root, "fixtures", "db");
  const names = args.length > 1 ? args.slice(1) : Object.keys(SCENARIOS);
  const unknown = names.filter((n) => !(n in SCENARIOS));
  if (unknown.length > 0) {
    console.error(`Unknown scenario "${unknown[0]}": use ${Object.keys(SCENARIOS).join(", ")}`);
    Deno.exit(2);
  }
  mkdirSync(out, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), "gen-db-fixtures-"));
  // Only the files written now get their etcdctl status (older ones stay as they are).
  const before = new Map<string, number>();
  for await (const e of Deno.readDir(out)) {
    if (e.name.endsWith(".db")) {
      before.set(e.name, Deno.statSync(join(out, e.name)).mtime!.getTime());
    }
  }
  stopOnSignal();
  try {
    for (const name of names) await SCENARIOS[name](dir, out);
    for await (const e of Deno.readDir(out)) {
      if (!e.name.endsWith(".db")) continue;
      const mtime = Deno.statSync(join(out, e.name)).mtime!.getTime();
      if (before.get(e.name) !== mtime) await recordStatus(join(out, e.name));
    }
    console.error(`==> Fixtures written to ${out}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) await main(Deno.args);
