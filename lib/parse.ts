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

import { StepError } from "./errors.ts";

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

/** The last non-empty lines of a command's stderr, for error messages. */
export function tail(text: string, lines = 5): string {
  return text.split("\n").filter((l) => l.trim() !== "").slice(-lines).join("\n");
}
