/**
 * How talosctl v1.13 prints things, reproduced for the simulator: Go `text/tabwriter`
 * (minwidth 0, padding 3), Go durations, hashicorp multierror text, gRPC error text and the
 * tables of `service`, `etcd alarm list`, `etcd status`, `etcd members`, `get addresses`,
 * `version`. Pure functions; the reference samples in `../shared/reference/talosctl/` are the
 * specification (see `tests/sim_test.ts`).
 *
 * @example
 * ```ts
 * import { tabwrite } from "./format.ts";
 * tabwrite("NODE\tID\n10.0.0.1\tetcd\n"); // "NODE       ID\n10.0.0.1   etcd\n"
 * ```
 */

import { humanizeBytes } from "../run/humanize.ts";

/** Go `text/tabwriter` with tabwidth 0, pad char space, no flags (talosctl: minwidth 0, padding 3). */
export function tabwrite(text: string, padding = 3, minwidth = 0): string {
  const lines = text.split("\n");
  const rows = lines.map((l) => l.split("\t"));
  const widths = rows.map((r) => new Array<number>(Math.max(0, r.length - 1)).fill(0));
  const cellWidth = (s: string) => [...s].length;
  for (let col = 0;; col++) {
    let found = false;
    let r = 0;
    while (r < rows.length) {
      if (rows[r].length - 1 <= col) {
        r++;
        continue;
      }
      found = true;
      let end = r;
      let width = minwidth;
      while (end < rows.length && rows[end].length - 1 > col) {
        width = Math.max(width, cellWidth(rows[end][col]) + padding);
        end++;
      }
      for (let k = r; k < end; k++) widths[k][col] = width;
      r = end;
    }
    if (!found) break;
  }
  return rows.map((cells, r) =>
    cells.map((cell, c) =>
      c < cells.length - 1 ? cell + " ".repeat(widths[r][c] - cellWidth(cell)) : cell
    ).join("")
  ).join("\n");
}

/** Go `time.Duration(ms).Round(time.Second).String()` for non-negative durations. */
export function goDuration(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000));
  if (total === 0) return "0s";
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

/** hashicorp/go-multierror text: `1 error occurred:\n\t* a\n\n`. */
export function multierror(errors: string[]): string {
  const head = errors.length === 1 ? "1 error occurred:" : `${errors.length} errors occurred:`;
  return `${head}\n${errors.map((e) => `\t* ${e}`).join("\n")}\n\n`;
}

/** A node's error inside a multierror: `NODE: rpc error: code = C desc = D`. */
export function nodeRpcError(node: string, code: string, desc: string): string {
  return `${node}: ${rpcError(code, desc)}`;
}

export function rpcError(code: string, desc: string): string {
  return `rpc error: code = ${code} desc = ${desc}`;
}

/** The gRPC dial error talosctl prints when the endpoint itself does not answer. */
export function dialError(host: string, reason = "connect: connection refused"): string {
  const hostPort = host.includes(":") ? `[${host}]:50000` : `${host}:50000`;
  return rpcError(
    "Unavailable",
    `connection error: desc = "transport: Error while dialing: dial tcp ${hostPort}: ${reason}"`,
  );
}

/** Go `%q` for the strings the simulator quotes (paths, node names). */
export function goQuote(s: string): string {
  return JSON.stringify(s);
}

/** Go `filepath.Clean` (Unix). */
export function goClean(path: string): string {
  if (path === "") return ".";
  const rooted = path.startsWith("/");
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!rooted) out.push("..");
      continue;
    }
    out.push(part);
  }
  const joined = out.join("/");
  if (rooted) return "/" + joined;
  return joined === "" ? "." : joined;
}

/** A member ID (decimal string, as etcd's JSON gateway writes it) as `%016x`. */
export function memberHex(id: string): string {
  return BigInt(id).toString(16).padStart(16, "0");
}

/** One service event, as the simulator stores it. */
export interface SimEvent {
  at: number;
  state: string;
  msg: string;
}

/** What `talosctl service etcd` shows for one node. */
export interface ServiceView {
  node: string;
  state: string;
  /** `?`, `OK` or `Fail`. */
  health: string;
  /** `LAST HEALTH MESSAGE`; the row is left out when empty. */
  healthMessage: string;
  /** Oldest first. */
  events: SimEvent[];
}

/** `talosctl service etcd` (RenderServicesInfo): one tabwriter for every block. */
export function renderServices(views: ServiceView[], now: number): string {
  let text = "";
  for (const v of views) {
    text += `NODE\t${v.node}\nID\tetcd\nSTATE\t${v.state}\nHEALTH\t${v.health}\n`;
    if (v.healthMessage) text += `LAST HEALTH MESSAGE\t${v.healthMessage}\n`;
    let label = "EVENTS";
    for (const e of [...v.events].reverse()) {
      text += `${label}\t[${e.state}]: ${e.msg} (${goDuration(now - e.at)} ago)\n`;
      label = "";
    }
  }
  return tabwrite(text);
}

export interface AlarmRow {
  node: string;
  /** Decimal member ID. */
  memberId: string;
  alarm: string;
}

/** `etcd alarm list|disarm`: header only with the first row, nothing at all without rows. */
export function renderAlarms(rows: AlarmRow[]): string {
  if (rows.length === 0) return "";
  let text = "NODE\tMEMBER\tALARM\n";
  for (const r of rows) text += `${r.node}\t${memberHex(r.memberId)}\t${r.alarm}\n`;
  return tabwrite(text);
}

export interface StatusRow {
  node: string;
  memberId: string;
  dbSize: number;
  dbSizeInUse: number;
  leader: string;
  raftIndex: number;
  raftTerm: number;
  raftAppliedIndex: number;
  learner: boolean;
  protocol: string;
  storage: string;
  errors: string[];
}

/** `etcd status` (v1.11+ column set). */
export function renderStatus(rows: StatusRow[]): string {
  if (rows.length === 0) return "";
  let text = "NODE\tMEMBER\tDB SIZE\tIN USE\tLEADER\tRAFT INDEX\tRAFT TERM\t" +
    "RAFT APPLIED INDEX\tLEARNER\tPROTOCOL\tSTORAGE\tERRORS\n";
  for (const r of rows) {
    const pct = r.dbSize > 0 ? (r.dbSizeInUse / r.dbSize) * 100 : 0;
    text += [
      r.node,
      memberHex(r.memberId),
      humanizeBytes(r.dbSize),
      `${humanizeBytes(r.dbSizeInUse)} (${pct.toFixed(2)}%)`,
      memberHex(r.leader),
      r.raftIndex,
      r.raftTerm,
      r.raftAppliedIndex,
      r.learner,
      r.protocol,
      r.storage,
      r.errors.join(", "),
    ].join("\t") + "\n";
  }
  return tabwrite(text);
}

export interface MemberRow {
  node: string;
  id: string;
  hostname: string;
  peerUrls: string[];
  clientUrls: string[];
  learner: boolean;
}

/** `etcd members` (rows in etcd order, i.e. sorted by member ID). */
export function renderMembers(rows: MemberRow[]): string {
  if (rows.length === 0) return "";
  let text = "NODE\tID\tHOSTNAME\tPEER URLS\tCLIENT URLS\tLEARNER\n";
  for (const r of rows) {
    text += `${r.node}\t${memberHex(r.id)}\t${r.hostname}\t${r.peerUrls.join(",")}\t` +
      `${r.clientUrls.join(",")}\t${r.learner}\n`;
  }
  return tabwrite(text);
}

/** Sorts decimal member IDs numerically, as etcd lists them. */
export function byMemberId<T extends { id: string }>(a: T, b: T): number {
  const x = BigInt(a.id);
  const y = BigInt(b.id);
  return x < y ? -1 : x > y ? 1 : 0;
}

export interface AddressNode {
  node: string;
  /** Position of the node in the lab, for its link-local and CNI addresses. */
  index: number;
  vip?: string;
  link?: string;
}

/** `get addresses`: AddressStatus rows sorted by ID (byte order). */
export function renderAddresses(nodes: AddressNode[]): string {
  let text = "NODE\tNAMESPACE\tTYPE\tID\tVERSION\tADDRESS\tLINK\n";
  for (const n of nodes) {
    const link = n.link ?? "eth0";
    const rows: { id: string; version: number; address: string; link: string }[] = [];
    const add = (l: string, address: string, version = 1) =>
      rows.push({ id: `${l}/${address}`, version, address, link: l });
    if (/^\d+\.\d+\.\d+\.\d+$/.test(n.node)) add(link, `${n.node}/24`);
    else if (n.node.includes(":")) add(link, `${n.node}/64`);
    if (n.vip) add(link, n.vip.includes(":") ? `${n.vip}/128` : `${n.vip}/32`);
    add(link, `fe80::be24:11ff:fe3a:5b${(0x0a + n.index).toString(16).padStart(2, "0")}/64`, 2);
    add("flannel.1", `10.244.${n.index}.0/32`);
    add("lo", "127.0.0.1/8");
    add("lo", "169.254.116.108/32");
    add("lo", "::1/128");
    rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const r of rows) {
      text += `${n.node}\tnetwork\tAddressStatus\t${r.id}\t${r.version}\t${r.address}\t${r.link}\n`;
    }
  }
  return tabwrite(text);
}

export const TALOS_TAG = "v1.13.9";
const VERSION_LINES = "\tTag:         v1.13.9\n\tSHA:         3ebd10a7\n\tBuilt:       \n" +
  "\tGo version:  go1.26.6\n\tOS/Arch:     linux/amd64\n";

/** The `Client:` block `talosctl version` prints before asking any server. */
export function renderVersionClient(): string {
  return `Client:\n${VERSION_LINES}`;
}

/** The `Server:` block for the nodes that answered. */
export function renderVersionServer(nodes: string[]): string {
  let text = "Server:\n";
  for (const n of nodes) text += `\tNODE:        ${n}\n${VERSION_LINES}\tEnabled:     RBAC\n`;
  return text;
}
