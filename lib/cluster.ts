/**
 * Reading a node's etcd service while it reboots, wipes, restores or joins: connection
 * refused is an answer ("down"), not an error, and a fresh event history proves a reboot.
 */

import type { Ctx } from "./context.ts";
import {
  type Alarm,
  isUnreachable,
  type Member,
  memberForNode,
  parseAlarms,
  parseMembers,
  parseServiceInfo,
  type ServiceInfo,
  tail,
} from "./parse.ts";
import { commandFailure, sub, talos } from "./talosctl.ts";
import { BACKOFF_MS, type Interval } from "./poll.ts";

/**
 * Pauses between two looks at a node's etcd service: 1 s, then backing off to 5 s (see
 * `BACKOFF_MS` in `lib/poll.ts`): at most one call per node per second.
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

/** What the cluster's etcd says of itself, asked of the first node that answers. */
export interface ClusterView {
  node: string;
  alarms: Alarm[];
  /** Undefined when `etcd members` failed on that node. */
  members?: Member[];
}

/**
 * Asks `etcd alarm list` (then `etcd members`) of each node in turn, `first` first, until one
 * answers. Undefined when none does (etcd answers nowhere: not healthy, and nothing to list).
 */
export async function askCluster(
  ctx: Ctx,
  first: string,
  step: string,
): Promise<ClusterView | undefined> {
  const order = [first, ...ctx.opts.nodes.filter((n) => n !== first)];
  for (const node of order) {
    const alarms = await talos(ctx, node, sub.alarmList(), { step });
    if (alarms.code !== 0) continue;
    const members = await talos(ctx, node, sub.members(), { step });
    return {
      node,
      alarms: parseAlarms(alarms.stdout),
      members: members.code === 0 ? parseMembers(members.stdout) : undefined,
    };
  }
  return undefined;
}

/** The evidence that the cluster is healthy (no alarm, every node a voter), or undefined. */
export function healthyEvidence(
  view: ClusterView | undefined,
  nodes: string[],
): string | undefined {
  if (!view || view.alarms.length > 0 || !view.members) return undefined;
  const list = view.members;
  if (list.length < nodes.length || list.some((m) => m.learner)) return undefined;
  return `"${view.node}" lists no alarms and ${list.length} voting members`;
}

/** Members whose peer URL names no node of `nodes` (`id (host)`). */
export function membersOutside(view: ClusterView | undefined, nodes: string[]): string[] {
  return (view?.members ?? []).filter((m) => !nodes.some((n) => memberForNode([m], n)))
    .map((m) => `${m.hostname || m.id} (${m.peerUrls.join(",")})`);
}
