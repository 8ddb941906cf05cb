/**
 * Reading a node's etcd service while it reboots, wipes, restores or joins: connection
 * refused is an answer ("down"), not an error, and a fresh event history proves a reboot.
 */

import type { Ctx } from "../run/context.ts";
import {
  type Alarm,
  type EtcdStatusRow,
  followsLeader,
  isUnreachable,
  type Member,
  memberForNode,
  parseAlarms,
  parseEtcdStatus,
  parseMembers,
  parseServiceInfo,
  type ServiceInfo,
} from "./parse.ts";
import { tail } from "../run/command.ts";
import { commandFailure, sub, talos } from "./talosctl.ts";
import { BACKOFF_MS, type Interval, poll } from "../run/poll.ts";
import { StepError } from "../run/errors.ts";

/**
 * Pauses between two looks at a node's etcd service: 1 s, then backing off to 5 s (see
 * `BACKOFF_MS` in `lib/run/poll.ts`): at most one call per node per second.
 */
export const SERVICE_POLL_MS: Interval = BACKOFF_MS;

export type ServiceLook =
  | { kind: "down"; detail: string }
  | { kind: "up"; info: ServiceInfo };

/** `talosctl service etcd` on `node`: its block, or "down" while it cannot be reached. */
export async function lookAtEtcd(ctx: Ctx, node: string, step: string): Promise<ServiceLook> {
  const args = sub.serviceEtcd();
  const r = await talos(ctx, node, args, { step });
  if (r.code === 0) {
    const info = parseServiceInfo(r.stdout).find((b) => b.id === "etcd");
    if (info) return { kind: "up", info };
    throw commandFailure(ctx, node, args, { ...r, stderr: `unreadable output: ${tail(r.stdout)}` });
  }
  if (r.timedOut || isUnreachable(r.stderr)) {
    return { kind: "down", detail: r.timedOut ? "no answer (call deadline)" : "unreachable" };
  }
  throw commandFailure(ctx, node, args, r);
}

/** True when every event is younger than `sinceMs` ago: the service started after it. */
export function startedWithin(info: ServiceInfo, sinceMs: number): boolean {
  const oldest = info.events.at(-1);
  return oldest?.ageMs !== undefined && oldest.ageMs <= sinceMs;
}

/** One line for progress: `Preparing (HEALTH ?): Running pre state`. */
export function describe(look: ServiceLook): string {
  if (look.kind === "down") return `down (${look.detail})`;
  const { state, health, lastHealthMessage, events } = look.info;
  const last = lastHealthMessage ?? events[0]?.message ?? "";
  return `${state} (HEALTH ${health})${last ? `: ${last}` : ""}`;
}

/** The newest event's message, where a Failed service says why. */
export function lastEvent(info: ServiceInfo): string {
  return info.events[0]?.message ?? "(no events)";
}

const ETCD_STATUS = ["etcd", "status"];

/** The deadline of one `etcd status` look: it answers at once, quorum or not, or not at all. */
export const STATUS_CALL_MS = 15_000;

/** What the cluster's etcd says of itself, asked of every node at once. */
export interface ClusterView {
  /** The node whose alarm list is used (the first in order that answered it). */
  node?: string;
  /** Undefined when no node was asked, or none answered `etcd alarm list`. */
  alarms?: Alarm[];
  /** Undefined when `etcd members` failed or was not asked. */
  members?: Member[];
  /** Each node's `etcd status` row, or the reason it gave none. */
  status: Map<string, EtcdStatusRow | { error: string }>;
  /** Nodes whose etcd answered `etcd status` following no leader. */
  noLeader: string[];
}

/**
 * Asks `etcd status` of every node at once (it answers without quorum), then `etcd alarm
 * list` and `etcd members` at once of every node that follows a leader; `first` is preferred
 * among the answers. Without a leader anywhere, neither is asked: both go through raft and
 * cannot answer (alarm list blocks about 12 minutes, members fails with `etcdserver: no
 * leader`). Logs the evidence, one line per node.
 */
export async function askCluster(ctx: Ctx, first: string, step: string): Promise<ClusterView> {
  const order = [first, ...ctx.opts.nodes.filter((n) => n !== first)];
  const status = new Map<string, EtcdStatusRow | { error: string }>();
  await Promise.all(order.map(async (node) => {
    const r = await talos(ctx, node, ETCD_STATUS, { step, timeoutMs: STATUS_CALL_MS });
    if (r.code !== 0) {
      status.set(node, { error: tail(r.stderr, 1).trim() || `exit ${r.code}` });
      return;
    }
    const rows = parseEtcdStatus(r.stdout);
    const row = rows.find((x) => x.node === node) ?? rows[0];
    status.set(node, row ?? { error: "no row in etcd status" });
  }));
  const view: ClusterView = { status, noLeader: [] };
  const leading: string[] = [];
  for (const node of order) {
    const row = status.get(node)!;
    if ("error" in row) {
      ctx.log.info(`${node}: etcd status did not answer: ${row.error}`);
    } else if (followsLeader(row)) {
      leading.push(node);
      ctx.log.info(`${node}: etcd status: ${statusLine(row)}`);
    } else {
      view.noLeader.push(node);
      ctx.log.info(`${node}: etcd status: NO LEADER (${statusLine(row)})`);
    }
  }
  if (leading.length === 0) {
    ctx.log.warn(
      `no etcd member follows a leader (${
        view.noLeader.length > 0
          ? `no leader on ${view.noLeader.join(", ")}`
          : "no node answered etcd status"
      }): etcd alarm list and etcd members not asked, they cannot answer without quorum; ` +
        `a cluster without a leader is not healthy`,
    );
    return view;
  }
  const answers = await Promise.all(leading.map(async (node) => {
    const [alarms, members] = await Promise.all([
      talos(ctx, node, sub.alarmList(), { step }),
      talos(ctx, node, sub.members(), { step }),
    ]);
    return { node, alarms, members };
  }));
  const listed = answers.find((a) => a.alarms.code === 0);
  const withMembers = answers.find((a) => a.members.code === 0);
  if (listed) {
    view.node = listed.node;
    view.alarms = parseAlarms(listed.alarms.stdout);
  } else {
    ctx.log.warn(
      `no node answered etcd alarm list (${leading.join(", ")} asked): alarms not known`,
    );
  }
  if (withMembers) view.members = parseMembers(withMembers.members.stdout);
  return view;
}

/** `leader 5a6b7c8d9e0f1a2b, raft term 14, index 2419803, errors: …` for the evidence. */
function statusLine(row: EtcdStatusRow): string {
  return `leader ${row.leader}, raft term ${row.raftTerm}, index ${row.raftIndex}${
    row.learner ? ", learner" : ""
  }${row.errors.length > 0 ? `, errors: ${row.errors.join("; ")}` : ""}`;
}

/**
 * The evidence that the cluster is healthy (a leader, no alarm, every node a voter), or
 * undefined.
 */
export function healthyEvidence(
  view: ClusterView | undefined,
  nodes: string[],
): string | undefined {
  if (!view?.alarms || view.alarms.length > 0 || !view.members) return undefined;
  const list = view.members;
  if (list.length < nodes.length || list.some((m) => m.learner)) return undefined;
  return `"${view.node}" lists no alarms and ${list.length} voting members`;
}

/** Members whose peer URL names no node of `nodes` (`id (host)`). */
export function membersOutside(view: ClusterView | undefined, nodes: string[]): string[] {
  return (view?.members ?? []).filter((m) => !nodes.some((n) => memberForNode([m], n)))
    .map((m) => `${m.hostname || m.id} (${m.peerUrls.join(",")})`);
}

/** Polls the seed until etcd is Preparing; fails fast when it is Running or Failed. */
export async function waitPreparing(ctx: Ctx, seed: string): Promise<void> {
  await poll(ctx, {
    what: `etcd on "${seed}" to be Preparing`,
    intervalMs: SERVICE_POLL_MS,
    timeoutMs: ctx.opts.timeoutMs,
    check: async () => {
      const look = await lookAtEtcd(ctx, seed, "wait");
      if (look.kind === "up" && look.info.state === "Preparing") {
        return { done: true, value: undefined };
      }
      if (look.kind === "up" && look.info.state === "Running") {
        throw new StepError(
          `etcd on "${seed}" is Running, not Preparing: it was not wiped, or it was already bootstrapped`,
          {
            hint:
              "if it was already bootstrapped, go on with deno task disarm; otherwise run deno task wipe",
          },
        );
      }
      if (look.kind === "up" && look.info.state === "Failed") {
        throw new StepError(`etcd on "${seed}" is Failed: ${lastEvent(look.info)}`, {
          hint:
            `a failed restore leaves files behind: reset the seed again (deno task wipe --nodes ${seed} --force --yes), then bootstrap`,
        });
      }
      return { done: false, state: describe(look) };
    },
  });
}
