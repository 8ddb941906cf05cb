/**
 * Pure parsers for talosctl output (tables by header name, `service` blocks, event ages)
 * and classifiers for the error texts that are expected at some moment of the runbook.
 *
 * @example
 * ```ts
 * import { parseTable } from "./parse.ts";
 * parseTable("NODE   MEMBER   ALARM\n10.0.0.1   00000000000000aa   CORRUPT\n");
 * ```
 */

import { StepError } from "../run/errors.ts";

/** talosctl printed something this tool cannot read: never guessed around. */
export class OutputFormatError extends StepError {}

/**
 * Checks that non-empty `text` starts with a header holding every name in `headers`;
 * throws `OutputFormatError` quoting the first line otherwise.
 */
export function requireHeader(text: string, headers: string[], what: string): void {
  if (text.trim() === "") return;
  const first = text.split("\n").find((l) => l.trim() !== "") ?? "";
  const names = first.split(/\s{2,}/).map((h) => h.trim());
  const missing = headers.filter((h) => !names.includes(h));
  if (missing.length > 0) {
    throw new OutputFormatError(
      `Unreadable output of ${what}: expected a table with ${headers.join(", ")}, got "${
        first.slice(0, 80)
      }"`,
    );
  }
}

/** One row of a talosctl table, keyed by the header text (`"PEER URLS"`). */
export type Row = Record<string, string>;

/**
 * Parses a tabwriter table by header name. Header cells are separated by at least two
 * spaces (tabwriter pads with three); cells are cut at the header's column offsets.
 * Empty input (talosctl's answer when there are no rows) gives no rows.
 */
export function parseTable(text: string): Row[] {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  if (lines.length === 0) return [];
  const header = lines[0];
  const starts: number[] = [];
  const names: string[] = [];
  for (const m of header.matchAll(/\S+(?: \S+)*/g)) {
    starts.push(m.index);
    names.push(m[0]);
  }
  return lines.slice(1).map((line) => {
    const row: Row = {};
    names.forEach((name, i) => {
      const end = i + 1 < starts.length ? starts[i + 1] : undefined;
      row[name] = line.slice(starts[i], end).trim();
    });
    return row;
  });
}

export interface ServiceEvent {
  state: string;
  message: string;
  /** Age in milliseconds, from `(1m21s ago)`; undefined if it could not be read. */
  ageMs?: number;
}

export interface ServiceInfo {
  node: string;
  id: string;
  state: string;
  health: string;
  lastHealthMessage?: string;
  /** Newest first, as talosctl prints them. */
  events: ServiceEvent[];
}

/** Parses `talosctl service etcd` output: one block per node. */
export function parseServiceInfo(text: string): ServiceInfo[] {
  const blocks: ServiceInfo[] = [];
  let current: ServiceInfo | undefined;
  let inEvents = false;
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  const width = lines.length > 0 ? (lines[0].match(/^NODE\s+/)?.[0].length ?? 0) : 0;
  for (const line of lines) {
    const label = line.slice(0, width).trim();
    const value = line.slice(width).trim();
    if (label === "NODE") {
      current = { node: value, id: "", state: "", health: "", events: [] };
      blocks.push(current);
      inEvents = false;
      continue;
    }
    if (!current) continue;
    if (label === "ID") current.id = value;
    else if (label === "STATE") current.state = value;
    else if (label === "HEALTH") current.health = value;
    else if (label === "LAST HEALTH MESSAGE") current.lastHealthMessage = value;
    else if (label === "EVENTS") {
      inEvents = true;
      current.events.push(parseEvent(value));
    } else if (label === "" && inEvents) current.events.push(parseEvent(value));
  }
  return blocks;
}

/** `[Running]: Health check successful (2m54s ago)` → state, message, age. */
export function parseEvent(text: string): ServiceEvent {
  const m = text.match(/^\[(\w+)\]: (.*?)(?: \(([0-9hms.µn]+) ago\))?$/);
  if (!m) return { state: "", message: text };
  return { state: m[1], message: m[2], ageMs: m[3] ? parseGoDuration(m[3]) : undefined };
}

/** Go's `time.Duration` text (`2h3m4s`, `17s`, `1.5s`, `300ms`) → milliseconds. */
export function parseGoDuration(text: string): number | undefined {
  const re = /(\d+(?:\.\d+)?)(h|ms|m|s|µs|us|ns)/gy;
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  const unit: Record<string, number> = {
    h: 3_600_000,
    m: 60_000,
    s: 1000,
    ms: 1,
    "µs": 0.001,
    us: 0.001,
    ns: 0.000001,
  };
  while ((m = re.exec(text)) !== null) {
    total += Number(m[1]) * unit[m[2]];
    pos = re.lastIndex;
  }
  return pos === text.length && pos > 0 ? total : undefined;
}

/** An alarm row of `etcd alarm list|disarm`. */
export interface Alarm {
  node: string;
  member: string;
  alarm: string;
}

export function parseAlarms(text: string): Alarm[] {
  requireHeader(text, ["MEMBER", "ALARM"], "etcd alarm list");
  return parseTable(text).map((r) => ({ node: r.NODE, member: r.MEMBER, alarm: r.ALARM }));
}

export interface Member {
  id: string;
  hostname: string;
  peerUrls: string[];
  clientUrls: string[];
  learner: boolean;
}

export function parseMembers(text: string): Member[] {
  requireHeader(text, ["ID", "PEER URLS", "LEARNER"], "etcd members");
  return parseTable(text).map((r) => ({
    id: r.ID,
    hostname: r.HOSTNAME,
    peerUrls: (r["PEER URLS"] ?? "").split(",").filter(Boolean),
    clientUrls: (r["CLIENT URLS"] ?? "").split(",").filter(Boolean),
    learner: r.LEARNER === "true",
  }));
}

/** One row of `etcd status`: what a member says of itself, answered without quorum. */
export interface EtcdStatusRow {
  node: string;
  member: string;
  /** Hex member ID of the leader this member follows; `0000000000000000` when there is none. */
  leader: string;
  raftIndex: number;
  raftTerm: number;
  raftAppliedIndex: number;
  learner: boolean;
  dbSize: string;
  inUse: string;
  protocol: string;
  storage: string;
  /** The ERRORS cell split into entries: alarms (`memberID:… alarm:CORRUPT`), `etcdserver: no leader`. */
  errors: string[];
}

/** The error etcd's Status adds when the member follows no leader. */
export const NO_LEADER_ERROR = "etcdserver: no leader";

/**
 * Parses `etcd status` by header name. The ERRORS cell joins entries with `", "` (and an alarm
 * entry ends in a space: `alarm:NOSPACE , memberID:…`).
 */
export function parseEtcdStatus(text: string): EtcdStatusRow[] {
  requireHeader(text, ["NODE", "MEMBER", "LEADER", "RAFT INDEX", "ERRORS"], "etcd status");
  const int = (cell: string | undefined) => (/^\d+$/.test(cell ?? "") ? Number(cell) : NaN);
  return parseTable(text).map((r) => ({
    node: r.NODE,
    member: r.MEMBER,
    leader: r.LEADER,
    raftIndex: int(r["RAFT INDEX"]),
    raftTerm: int(r["RAFT TERM"]),
    raftAppliedIndex: int(r["RAFT APPLIED INDEX"]),
    learner: r.LEARNER === "true",
    dbSize: r["DB SIZE"] ?? "",
    inUse: r["IN USE"] ?? "",
    protocol: r.PROTOCOL ?? "",
    storage: r.STORAGE ?? "",
    errors: (r.ERRORS ?? "").split(/\s*,\s+/).map((e) => e.trim()).filter(Boolean),
  }));
}

/** True when the member follows a leader: a LEADER other than zero, and no "no leader" error. */
export function followsLeader(row: EtcdStatusRow): boolean {
  return /^[0-9a-f]+$/i.test(row.leader) && !/^0+$/.test(row.leader) &&
    !row.errors.includes(NO_LEADER_ERROR);
}

/** The host part of a URL (`https://[fd00::1]:2380` → `fd00::1`). */
export function urlHost(url: string): string {
  try {
    return new URL(url).hostname.replace(/^\[|\]$/g, "");
  } catch {
    return "";
  }
}

/** The member whose peer or client URL names `node`, if any. */
export function memberForNode(members: Member[], node: string): Member | undefined {
  return members.find((m) => [...m.peerUrls, ...m.clientUrls].some((u) => urlHost(u) === node));
}

/** ADDRESS cells of `get addresses` (`192.168.53.2/32`). */
export function parseAddresses(text: string): string[] {
  requireHeader(text, ["ADDRESS"], "get addresses");
  return parseTable(text).map((r) => r.ADDRESS).filter(Boolean);
}

/** True when `addresses` holds `vip` as a host address (/32 or /128). */
export function holdsVip(addresses: string[], vip: string): boolean {
  return addresses.some((a) => a === `${vip}/32` || a === `${vip}/128`);
}

// Error texts that are expected at a given moment, matched on their stable parts.

/** The node is down or rebooting (connection refused, unreachable, timeout). */
export function isUnreachable(stderr: string): boolean {
  return /code = Unavailable|connection refused|no route to host|i\/o timeout|connection reset|network is unreachable|DeadlineExceeded/
    .test(stderr);
}

/** Bootstrap answers that mean "ask again in a moment" (an ERE: the printed plan greps it). */
export const BOOTSTRAP_NOT_READY =
  "bootstrap is not available yet|time is not in sync yet|not ready for recovery yet";

export function isBootstrapNotReady(stderr: string): boolean {
  return new RegExp(BOOTSTRAP_NOT_READY).test(stderr);
}

export function isDataDirNotEmpty(stderr: string): boolean {
  return /etcd data directory is not empty/.test(stderr);
}

export function isLearnerRpc(text: string): boolean {
  return /rpc not supported for learner/.test(text);
}

/** A row of `kubectl get nodes -o wide`. */
export interface KubeNode {
  name: string;
  /** `Ready`, `NotReady`, `Ready,SchedulingDisabled`, … */
  status: string;
  /** `control-plane`, `worker`, … (`<none>` gives none). */
  roles: string[];
  internalIp: string;
}

/** Parses `kubectl get nodes [-o wide]` by header name (INTERNAL-IP only with `-o wide`). */
export function parseKubeNodes(text: string): KubeNode[] {
  requireHeader(text, ["NAME", "STATUS", "ROLES"], "kubectl get nodes");
  return parseTable(text).map((r) => ({
    name: r.NAME,
    status: r.STATUS,
    roles: (r.ROLES ?? "").split(",").filter((x) => x !== "" && x !== "<none>"),
    internalIp: r["INTERNAL-IP"] ?? "",
  }));
}

/** True when the STATUS of `kubectl get nodes` says Ready (not `NotReady`). */
export function isKubeReady(status: string): boolean {
  return status.split(",").includes("Ready");
}

/** A row of `talosctl get members` (cluster discovery: every node of the cluster). */
export interface TalosMember {
  node: string;
  id: string;
  hostname: string;
  /** `controlplane`, `init`, `worker`, `unknown`. */
  machineType: string;
  os: string;
  addresses: string[];
}

/**
 * Parses `talosctl get members`: NODE NAMESPACE TYPE ID VERSION HOSTNAME MACHINE TYPE OS
 * ADDRESSES, ADDRESSES a JSON list (`["192.168.53.20","fd00::20"]`).
 */
export function parseTalosMembers(text: string): TalosMember[] {
  requireHeader(text, ["HOSTNAME", "MACHINE TYPE", "ADDRESSES"], "get members");
  return parseTable(text).map((r) => {
    let addresses: string[] = [];
    try {
      const list = JSON.parse(r.ADDRESSES || "[]");
      if (Array.isArray(list)) addresses = list.map(String);
    } catch {
      throw new OutputFormatError(`Unreadable ADDRESSES of get members: "${r.ADDRESSES}"`);
    }
    return {
      node: r.NODE ?? "",
      id: r.ID ?? "",
      hostname: r.HOSTNAME,
      machineType: r["MACHINE TYPE"],
      os: r.OS ?? "",
      addresses,
    };
  });
}

/** What `kubectl get pods -A -o json` says of one pod, reduced to what triage needs. */
export interface PodInfo {
  namespace: string;
  name: string;
  node: string;
  phase: string;
  /** Every container (init containers too) reports ready. */
  ready: boolean;
  /** The most telling reason: a waiting container's (`ContainerCreating`), else the pod's. */
  reason: string;
  createdAt?: string;
  owners: { kind: string; name: string; controller: boolean }[];
}

// deno-lint-ignore no-explicit-any
type Json = any;

function jsonItems(text: string, what: string): Json[] {
  let doc: Json;
  try {
    doc = JSON.parse(text);
  } catch (error) {
    throw new OutputFormatError(`Unreadable output of ${what}: ${(error as Error).message}`);
  }
  if (!doc || !Array.isArray(doc.items)) {
    throw new OutputFormatError(`Unreadable output of ${what}: no "items" list`);
  }
  return doc.items;
}

/** Parses `kubectl get pods -A -o json` (a `List` of `Pod`). */
export function parsePods(text: string): PodInfo[] {
  return jsonItems(text, "kubectl get pods -A -o json").map((p: Json) => {
    const status = p.status ?? {};
    const containers: Json[] = [
      ...(status.initContainerStatuses ?? []),
      ...(status.containerStatuses ?? []),
    ];
    const waiting = containers.map((c) => c.state?.waiting?.reason).find(Boolean);
    const terminated = containers.map((c) => c.state?.terminated?.reason)
      .find((r) => r && r !== "Completed");
    const unscheduled = (status.conditions ?? []).find((c: Json) =>
      c.type === "PodScheduled" && c.status === "False"
    )?.reason;
    const phase = String(status.phase ?? "Unknown");
    const ready = (status.containerStatuses ?? []).length > 0 &&
      (status.containerStatuses as Json[]).every((c) => c.ready === true);
    return {
      namespace: String(p.metadata?.namespace ?? ""),
      name: String(p.metadata?.name ?? ""),
      node: String(p.spec?.nodeName ?? ""),
      phase,
      ready,
      reason: String(
        waiting ?? terminated ?? status.reason ?? unscheduled ??
          (phase === "Running" ? "NotReady" : phase),
      ),
      createdAt: p.metadata?.creationTimestamp,
      owners: (p.metadata?.ownerReferences ?? []).map((o: Json) => ({
        kind: String(o.kind ?? ""),
        name: String(o.name ?? ""),
        controller: o.controller === true,
      })),
    };
  });
}

/** An event of `kubectl get events -A -o json` about a pod. */
export interface PodEvent {
  namespace: string;
  pod: string;
  reason: string;
  message: string;
  /** lastTimestamp, else eventTime, else creationTimestamp (ISO). */
  at: string;
}

/** Parses `kubectl get events -A -o json`, keeping the events about pods. */
export function parsePodEvents(text: string): PodEvent[] {
  return jsonItems(text, "kubectl get events -A -o json")
    .filter((e: Json) => e.involvedObject?.kind === "Pod")
    .map((e: Json) => ({
      namespace: String(e.involvedObject.namespace ?? e.metadata?.namespace ?? ""),
      pod: String(e.involvedObject.name ?? ""),
      reason: String(e.reason ?? ""),
      message: String(e.message ?? ""),
      at: String(
        e.lastTimestamp ?? e.eventTime ?? e.series?.lastObservedTime ??
          e.metadata?.creationTimestamp ?? "",
      ),
    }));
}

/** What `talosctl etcd snapshot PATH` printed on success. */
export interface SnapshotSaved {
  path: string;
  bytes: number;
  hash: string;
  revision: number;
  totalKeys: number;
  totalSize: number;
}

/**
 * Parses `etcd snapshot saved to "PATH" (N bytes)` and `snapshot info: hash H, revision R,
 * total keys K, total size S`; undefined when either line is missing.
 */
export function parseSnapshotSaved(text: string): SnapshotSaved | undefined {
  const saved = text.match(/^etcd snapshot saved to "(.*)" \((\d+) bytes\)$/m);
  const info = text.match(
    /^snapshot info: hash ([0-9a-f]+), revision (\d+), total keys (\d+), total size (\d+)$/m,
  );
  if (!saved || !info) return undefined;
  return {
    path: saved[1],
    bytes: Number(saved[2]),
    hash: info[1],
    revision: Number(info[2]),
    totalKeys: Number(info[3]),
    totalSize: Number(info[4]),
  };
}
