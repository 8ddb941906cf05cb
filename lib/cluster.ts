/**
 * Reading a node's etcd service while it reboots, wipes, restores or joins: connection
 * refused is an answer ("down"), not an error, and a fresh event history proves a reboot.
 */

import type { Ctx } from "./context.ts";
import { isUnreachable, parseMembers, parseServiceInfo, type ServiceInfo, tail } from "./parse.ts";
import { commandFailure, sub, talos } from "./talosctl.ts";

/** Interval between two looks at a node's etcd service. */
export const SERVICE_POLL_MS = 5_000;

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

/**
 * Is the cluster healthy (no alarms, every node a voting member)? Asked on `node`.
 * Returns the evidence when it is, undefined when it is not or cannot be told.
 */
export async function healthyEvidence(
  ctx: Ctx,
  node: string,
  nodes: string[],
  step: string,
): Promise<string | undefined> {
  const alarms = await talos(ctx, node, sub.alarmList(), { step });
  if (alarms.code !== 0 || alarms.stdout.trim() !== "") return undefined;
  const members = await talos(ctx, node, sub.members(), { step });
  if (members.code !== 0) return undefined;
  const list = parseMembers(members.stdout);
  if (list.length < nodes.length || list.some((m) => m.learner)) return undefined;
  return `"${node}" lists no alarms and ${list.length} voting members`;
}
