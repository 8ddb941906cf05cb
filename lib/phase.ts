/**
 * Where a recovery stands: one model, derived from what the journal records (`Progress`, read
 * by lib/resume.ts) and a fresh look at the cluster (`Looks`), so that a re-run of any task
 * goes on from there without repeating what took effect. The derivation (`whereItStands`,
 * `rejoinStep`) is a pure function of those two; the looking (`lookAtSeed`, `lookAtRejoins`)
 * is done separately.
 *
 * An accepted call whose effect the live cluster shows counts as done: the bootstrap accepted
 * and the seed's etcd Running is a restore; a reboot accepted and the node's etcd started
 * since, healthy and a voter, is a rejoin. A live state the journal contradicts is refused.
 */

import type { Ctx } from "./context.ts";
import { describe, lastEvent, lookAtEtcd, type ServiceLook, startedWithin } from "./cluster.ts";
import { type Member, memberForNode, parseMembers } from "./parse.ts";
import { type Progress, rejoinedNodes } from "./resume.ts";
import { sub, talos } from "./talosctl.ts";

/** The phases of a recovery, in order. */
export const PHASES = [
  "not started",
  "copies taken",
  "reset sent",
  "wiped",
  "bootstrap accepted",
  "restored",
  "disarmed",
  "rejoined",
  "verified",
] as const;
export type Phase = typeof PHASES[number];

/**
 * Where a re-run goes on: `start` (pre-flight, extract, safety, wipe), `finish wipe`,
 * `bootstrap` (wait, bootstrap), `await restore` (the accepted bootstrap's restore, never a
 * second bootstrap), `disarm` (then rejoin, verify), or `refuse` (see `contradiction`).
 */
export type Next = "start" | "finish wipe" | "bootstrap" | "await restore" | "disarm" | "refuse";

/** What a look at the cluster found (each part undefined when not looked at). */
export interface Looks {
  /** When the looks were taken (epoch ms). */
  now: number;
  /** `service etcd` on the seed. */
  seed?: ServiceLook;
  /** `service etcd` on other nodes (those with a reboot accepted, for rejoin). */
  nodes?: Map<string, ServiceLook>;
  /** `etcd members` on the seed. */
  members?: Member[];
}

/** What rejoin does with one node but the seed. */
export type NodeStep =
  | { do: "done"; why: string }
  | { do: "await"; since: number; why: string }
  | { do: "reboot"; why: string };

export interface Standing {
  phase: Phase;
  next: Next;
  /** What the journal records, in words. */
  journal: string;
  /** What the looks showed, in words ("" when nothing was looked at). */
  live: string;
  /** Set when the live state contradicts the journal: the two facts, for a refusal. */
  contradiction?: { journal: string; live: string };
  /** Per node but the seed: rejoined, to wait for, or to reboot. */
  rejoin: Map<string, NodeStep>;
}

const isRunning = (l?: ServiceLook) => l?.kind === "up" && l.info.state === "Running";
const isFailed = (l?: ServiceLook) => l?.kind === "up" && l.info.state === "Failed";

/**
 * Where the recovery recorded in `p` stands, given `looks`. `nodes` is the recovery's
 * `--nodes`; `copiesTaken` whether OUT holds a manifest with copies.
 */
export function whereItStands(
  p: Progress,
  looks: Looks,
  nodes: readonly string[],
  copiesTaken: boolean,
): Standing {
  const seed = p.seed;
  const others = nodes.filter((n) => n !== seed);
  const rejoin = new Map(others.map((n) => [n, rejoinStep(p, n, looks)]));
  const live = looks.seed && seed ? `etcd on ${seed} is ${describe(looks.seed)}` : "";
  const at = (step: string) => p.done.get(step);
  const base = { live, rejoin };
  const bootstrapped = at("bootstrap");
  const accepted = bootstrapped ?? p.bootstrapAccepted;

  if (!accepted && p.resetSent.size > 0) {
    const journal = `reset sent to ${[...p.resetSent.keys()].join(", ")}, wipe not finished`;
    return { ...base, phase: "reset sent", next: "finish wipe", journal };
  }
  const its = looks.seed ? `its etcd is ${describe(looks.seed)}` : "";
  if (!accepted && at("wipe")) {
    const journal = `every node was wiped (${at("wipe")}) and ${seed} not yet bootstrapped`;
    if (isRunning(looks.seed)) {
      const contradiction = { journal, live: its };
      return { ...base, phase: "wiped", next: "refuse", journal, contradiction };
    }
    return { ...base, phase: "wiped", next: "bootstrap", journal };
  }
  if (!accepted) {
    const phase = copiesTaken ? "copies taken" : "not started";
    return { ...base, phase, next: "start", journal: copiesTaken ? "copies taken" : "nothing" };
  }

  // The bootstrap was accepted: it is never sent again.
  if (!bootstrapped) {
    const journal =
      `the bootstrap of ${seed} was accepted (${accepted}), its restore not seen done`;
    if (isFailed(looks.seed) && looks.seed?.kind === "up") {
      const why = lastEvent(looks.seed.info);
      return {
        ...base,
        live: `${live}: ${why}`,
        phase: "bootstrap accepted",
        next: "refuse",
        journal,
        contradiction: { journal, live: `${its}: the restore failed: ${why}` },
      };
    }
    const phase = isRunning(looks.seed) ? "restored" : "bootstrap accepted";
    return { ...base, phase, next: "await restore", journal };
  }
  const journal = `${seed} was bootstrapped (${bootstrapped})`;
  if (looks.seed && !isRunning(looks.seed)) {
    const contradiction = { journal, live: its };
    return { ...base, phase: "restored", next: "refuse", journal, contradiction };
  }
  const allRejoined = [...rejoin.values()].every((s) => s.do === "done");
  // a disarm accepted just before Ctrl-C counts too (its step then ends "skipped": no alarm)
  const phase = !at("disarm") && !p.disarmAccepted
    ? "restored"
    : !allRejoined
    ? "disarmed"
    : at("verify") && others.every((n) => p.done.has(`rejoin:${n}`))
    ? "verified"
    : "rejoined";
  return { ...base, phase, next: "disarm", journal };
}

/**
 * What rejoin does with `node`: nothing when the journal records it rejoined; with a reboot
 * accepted earlier, by what its etcd shows now (`looks.nodes`): started since, healthy and a
 * voter (`looks.members`) → rejoined; down, or started since and on its way → waited for, not
 * rebooted; not restarted since (the reboot did not take), or Failed → rebooted again.
 */
export function rejoinStep(p: Progress, node: string, looks: Looks): NodeStep {
  if (rejoinedNodes(p).has(node)) {
    return { do: "done", why: `rejoined in an earlier run (${p.done.get(`rejoin:${node}`)})` };
  }
  const sent = p.rebootSent.get(node);
  if (!sent) return { do: "reboot", why: "not rebooted yet" };
  const since = Date.parse(sent);
  const look = looks.nodes?.get(node);
  const reboot = `its reboot was accepted ${sent}`;
  if (!look) return { do: "await", since, why: `${reboot}; not looked at yet` };
  if (look.kind === "down") return { do: "await", since, why: `${reboot}; ${describe(look)}` };
  const state = `etcd ${describe(look)}`;
  if (!startedWithin(look.info, looks.now - since)) {
    return { do: "reboot", why: `${reboot}, but its ${state} has not restarted since` };
  }
  if (look.info.state === "Failed") {
    return { do: "reboot", why: `${reboot}; ${state} since: ${lastEvent(look.info)}` };
  }
  if (look.info.state === "Running" && look.info.health === "OK") {
    const me = looks.members && memberForNode(looks.members, node);
    if (me && !me.learner) {
      return { do: "done", why: `${reboot}; back since as a healthy voter (${state})` };
    }
    const not = !looks.members
      ? "the seed's members not asked"
      : me
      ? "a learner on the seed"
      : "not listed by the seed yet";
    return { do: "await", since, why: `${reboot}; ${state} since, ${not}` };
  }
  return { do: "await", since, why: `${reboot}; ${state} since, on its way back` };
}

/** `service etcd` on the seed, for `whereItStands`. */
export async function lookAtSeed(ctx: Ctx, seed: string, step: string): Promise<Looks> {
  const look = await lookAtEtcd(ctx, seed, step);
  return { now: ctx.deps.now(), seed: look };
}

/**
 * `service etcd` on each node whose reboot was accepted but that is not recorded as rejoined,
 * and `etcd members` on the seed when one of them is back healthy since: what `rejoinStep`
 * needs. Adds to `looks`.
 */
export async function lookAtRejoins(
  ctx: Ctx,
  p: Progress,
  seed: string,
  looks: Looks,
  step = "rejoin",
): Promise<Looks> {
  const done = rejoinedNodes(p);
  const pending = ctx.opts.nodes.filter((n) => n !== seed && p.rebootSent.has(n) && !done.has(n));
  const nodes = new Map<string, ServiceLook>();
  for (const n of pending) nodes.set(n, await lookAtEtcd(ctx, n, step));
  const now = ctx.deps.now();
  const back = pending.some((n) => {
    const l = nodes.get(n);
    return l?.kind === "up" && l.info.state === "Running" && l.info.health === "OK" &&
      startedWithin(l.info, now - Date.parse(p.rebootSent.get(n)!));
  });
  let members: Member[] | undefined;
  if (back) {
    const r = await talos(ctx, seed, sub.members(), { step });
    try {
      if (r.code === 0) members = parseMembers(r.stdout);
    } catch {
      // unreadable: not asked, so that node is waited for (the wait asks again)
    }
  }
  return { ...looks, now, nodes, members };
}
