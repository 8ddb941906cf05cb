/**
 * rejoin's decision for one node, from what was seen of it: wait, reboot it, done, or fail.
 * Pure: the task gathers the looks (`service etcd` on the node, `etcd members` on the seed)
 * and acts; this says what to do and why, in words for the log and the report.
 *
 * After a wipe, Talos retries the join of a wiped node every 3 s for 30 minutes (as a learner;
 * etcd takes one learner at a time, promoted once it caught up), so the other nodes usually
 * come back by themselves. A node is rebooted only when its etcd is Failed (the join loop
 * gave up: `Failed to run pre stage: failed to build initial etcd cluster: …`; a Failed
 * service is not restarted), when it has not begun to join within a grace counted from when
 * the seed runs with no learner in flight, or always with `--rolling-reboot`. A node that was
 * already a voter when rejoin started is never rebooted.
 *
 * @example
 * ```ts
 * import { decide } from "./rejoin_policy.ts";
 * const d = decide(
 *   { node: "10.0.0.2", seed: "10.0.0.1", graceMs: 30_000, rolling: false, voterAtStart: false },
 *   { now: 60_000, quietSince: 20_000, service: { kind: "down", detail: "unreachable" } },
 * );
 * // d.action.kind === "wait": a node that does not answer cannot be rebooted
 * ```
 */

import { describe, lastEvent, type ServiceLook, startedWithin } from "../talos/cluster.ts";
import { isLearnerRpc, type Member, memberForNode, type ServiceInfo } from "../talos/parse.ts";
import { formatMs } from "../run/poll.ts";

/** What does not change during one node's turn. */
export interface Turn {
  node: string;
  seed: string;
  /** `--join-grace`, in ms. */
  graceMs: number;
  /** `--rolling-reboot`. */
  rolling: boolean;
  /** The seed listed the node as a voter before rejoin did anything. */
  voterAtStart: boolean;
  /** When this run sent the node its reboot (epoch ms), if it did. */
  rebootedAt?: number;
  /** Why it was rebooted (for the final word). */
  rebootedWhy?: string;
}

/** One round of looks. */
export interface Looks {
  now: number;
  /** Since when the seed runs with no learner in flight, as far as the looks tell (epoch ms). */
  quietSince?: number;
  /** `service etcd` on the node. */
  service: ServiceLook;
  /** The seed's `etcd members`, when asked this round (see `needsMembers`). */
  members?: Member[];
  /** The node was seen down, or with a history younger than its reboot, since the reboot. */
  backFromReboot?: boolean;
}

export type Action =
  /** Done: a healthy voter. `why` is the outcome for the log (`rejoined by itself at …`). */
  | { kind: "done"; why: string }
  /** Look again later; `state` is the progress line. */
  | { kind: "wait"; state: string }
  /** Send `reboot --wait=false` now; `why` says so (`still Preparing after 30s`). */
  | { kind: "reboot"; why: string }
  /** Stop: waiting cannot help, and rebooting is not this run's to do. */
  | { kind: "fail"; error: string; hint: string };

export interface Decision {
  action: Action;
  /** The grace clock for the next round (carried from node to node). */
  quietSince?: number;
}

/**
 * Why the service failed: its newest event, with the rows a multi-line message spilled into
 * (Talos' join timeout ends in `1 error(s) occurred:` + newline + tab + `timeout`).
 */
export function failedReason(info: ServiceInfo): string {
  const [first, ...rest] = info.events;
  if (!first) return lastEvent(info);
  const more = rest.slice(0, rest.findIndex((e) => e.state !== "") >>> 0)
    .map((e) => e.message.replace(/ \([0-9hms.µn]+ ago\)$/, "").trim());
  return [first.message, ...more].join(" ");
}

/** `12:04:31 UTC` (the journal's clock). */
export function clockTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(11, 19)} UTC`;
}

/**
 * Why to reboot `turn.node` before even looking at it (`--rolling-reboot`: every node not a
 * voter when rejoin started, at its turn), or undefined.
 */
export function rebootAtOnce(turn: Turn): string | undefined {
  if (turn.rolling && !turn.voterAtStart && turn.rebootedAt === undefined) {
    return "rolling reboot (--rolling-reboot)";
  }
  return undefined;
}

/** True when the decision needs the seed's `etcd members` this round (saves calls otherwise). */
export function needsMembers(turn: Turn, service: ServiceLook): boolean {
  if (service.kind === "down" || service.info.state === "Failed") return false;
  const rebooted = turn.rebootedAt !== undefined;
  if (turn.rolling && !rebooted && !turn.voterAtStart) return false; // rebooted at its turn
  const { state, health, lastHealthMessage } = service.info;
  if (state === "Running" && health === "OK") return true; // is it a voter yet?
  if (rebooted || turn.voterAtStart) return false; // only waiting left
  // a Running learner has begun to join; anything else: is it listed, is the slot taken?
  return !(state === "Running" && isLearnerRpc(lastHealthMessage ?? ""));
}

/** What to do with `turn.node` after `looks`. */
export function decide(turn: Turn, looks: Looks): Decision {
  const { now, service } = looks;
  const learners = looks.members?.filter((m) => m.learner) ?? [];
  const me = looks.members ? memberForNode(looks.members, turn.node) : undefined;
  // the grace clock: stopped while a learner catches up, started when the slot is free
  let quietSince = looks.quietSince;
  if (looks.members) quietSince = learners.length > 0 ? undefined : quietSince ?? now;
  const joining = service.kind === "up" && service.info.state === "Running" &&
    isLearnerRpc(service.info.lastHealthMessage ?? "");
  if (joining) quietSince = undefined; // it is the learner in flight
  const d = (action: Action): Decision => ({ action, quietSince });

  if (service.kind === "down") return d({ kind: "wait", state: describe(service) });
  const info = service.info;
  const rebooted = turn.rebootedAt !== undefined;
  if (rebooted && !looks.backFromReboot && !startedWithin(info, now - turn.rebootedAt!)) {
    return d({ kind: "wait", state: `${describe(service)} — not rebooted yet` });
  }
  if (info.state === "Failed") {
    if (rebooted || turn.voterAtStart) {
      return d({
        kind: "fail",
        error: `etcd on "${turn.node}" failed${rebooted ? " after its reboot" : ""}: ${
          failedReason(info)
        }`,
        hint: rebooted
          ? `reboot it again with deno task rejoin (it was not recorded as rejoined)`
          : `it is a voting member, so rejoin does not reboot it: look at it, then ` +
            `talosctl -e ${turn.node} -n ${turn.node} reboot --wait=false`,
      });
    }
    return d({ kind: "reboot", why: `etcd Failed (${failedReason(info)})` });
  }
  const atOnce = rebootAtOnce(turn);
  if (atOnce) return d({ kind: "reboot", why: atOnce });
  if (info.state === "Running" && info.health === "OK" && me && !me.learner) {
    const why = turn.voterAtStart
      ? "already a voter"
      : rebooted
      ? `rebooted: ${turn.rebootedWhy ?? "asked"}; a voter at ${clockTime(now)}`
      : `rejoined by itself at ${clockTime(now)}`;
    return d({ kind: "done", why });
  }
  const learnerNote = joining ? " — a learner, waiting for promotion" : "";
  if (info.state === "Running" && info.health === "OK" && looks.members) {
    if (me?.learner) return d({ kind: "wait", state: "a learner, waiting for promotion" });
    if (rebooted || turn.voterAtStart) {
      return d({ kind: "wait", state: `healthy, but "${turn.seed}" does not list it yet` });
    }
  }
  if (rebooted || turn.voterAtStart || joining || me || !looks.members) {
    return d({ kind: "wait", state: `${describe(service)}${learnerNote}` });
  }
  // Not joining, and the seed does not list it: its turn, or a wait for the slot?
  const other = learners.find((m) => m !== me);
  if (other) {
    const name = other.hostname || other.peerUrls.join(",");
    return d({
      kind: "wait",
      state: `${describe(service)} — waits its turn: ${name} is a learner, catching up`,
    });
  }
  const waited = now - (quietSince ?? now);
  if (waited >= turn.graceMs) {
    const what = info.state === "Running"
      ? `Running but not a member of the seed's cluster`
      : `still ${info.state}`;
    return d({ kind: "reboot", why: `${what} after ${formatMs(waited)}` });
  }
  const at = clockTime((quietSince ?? now) + turn.graceMs);
  return d({
    kind: "wait",
    state: `${describe(service)} — not joining yet; rebooted if still so at ${at}`,
  });
}
