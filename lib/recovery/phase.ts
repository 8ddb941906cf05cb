/**
 * Where a recovery stands: one model, derived from what the journal records (`Progress`, read
 * by lib/recovery/resume.ts) and a fresh look at the cluster (`Looks`), so that a re-run of any task
 * goes on from there without repeating what took effect. The derivation (`whereItStands`,
 * `rejoinStep`) is a pure function of those two; the looking (`lookAtSeed`, `lookAtRejoins`)
 * is done separately.
 *
 * An accepted call whose effect the live cluster shows counts as done: the bootstrap accepted
 * and the seed's etcd Running is a restore; a reboot accepted and the node's etcd started
 * since, healthy and a voter, is a rejoin. A live state the journal contradicts is refused.
 */

import { type Ctx, step } from "../run/context.ts";
import { join } from "node:path";
import {
  describe,
  lastEvent,
  lookAtEtcd,
  type ServiceLook,
  startedWithin,
} from "../talos/cluster.ts";
import { RefusedError } from "../run/errors.ts";
import { taskCommand } from "./main.ts";
import { readManifest } from "./manifest.ts";
import { type Member, memberForNode, parseMembers } from "../talos/parse.ts";
import {
  describeProgress,
  type Progress,
  readProgress,
  rejoinedNodes,
  resumedSeed,
  unfinishedWipe,
} from "./resume.ts";
import { sub, talos } from "../talos/talosctl.ts";

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
  "finished",
] as const;
export type Phase = typeof PHASES[number];

/**
 * Where a re-run goes on: `start` (pre-flight, extract, safety, wipe), `finish wipe`,
 * `bootstrap` (wait, bootstrap), `await restore` (the accepted bootstrap's restore, never a
 * second bootstrap), `disarm` (then rejoin, verify, the after part), `after` (verify passed, the
 * after part did not finish: the backup, the kubelets, the stuck pods, never done twice), or
 * `refuse` (see `contradiction`). A finished recovery is checked again from `disarm` on.
 */
export type Next =
  | "start"
  | "finish wipe"
  | "bootstrap"
  | "await restore"
  | "disarm"
  | "after"
  | "refuse";

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
  // A bootstrap whose answer was cut off counts as accepted once the seed's etcd runs since.
  const cutOff = p.bootstrapCutOff;
  const tookEffect = cutOff !== undefined && looks.seed?.kind === "up" &&
    isRunning(looks.seed) && startedWithin(looks.seed.info, looks.now - Date.parse(cutOff));
  const accepted = bootstrapped ?? p.bootstrapAccepted ?? (tookEffect ? cutOff : undefined);

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
    const how = p.bootstrapAccepted ? "accepted" : "sent, its answer cut off,";
    const journal = `the bootstrap of ${seed} was ${how} (${accepted}), its restore not seen done`;
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
    : !at("verify") || !others.every((n) => p.done.has(`rejoin:${n}`))
    ? "rejoined"
    : at("after")
    ? "finished"
    : "verified";
  // verified, the after part not finished: it goes on there (its own steps say what is done)
  const next = phase === "verified" ? "after" : "disarm";
  const said = phase === "verified"
    ? `${journal}, verified (${at("verify")}), the after part not finished`
    : phase === "finished"
    ? `${journal}, verified (${at("verify")}), the after part finished (${at("after")})`
    : journal;
  return { ...base, phase, next, journal: said };
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

/** What the journal records, for the log: `wipe done …, bootstrap done …`. */
export function describeJournal(progress: Progress): string {
  const standing = whereItStands(progress, { now: 0 }, [], true);
  if (standing.next === "finish wipe") return unfinishedWipe(progress);
  const steps = describeProgress(progress, ["wipe", "bootstrap", "disarm", "verify", "after"]);
  const restoring = !progress.done.has("bootstrap");
  const accepted = restoring && progress.bootstrapAccepted
    ? `bootstrap accepted ${progress.bootstrapAccepted}`
    : restoring && progress.bootstrapCutOff
    ? `bootstrap sent ${progress.bootstrapCutOff} (its answer cut off)`
    : "";
  return [steps, accepted].filter(Boolean).join(", ");
}

/** What finishing a wipe does with one node (`runs`: refused). */
export type WipeStep =
  | { node: string; plan: "reset"; why: string }
  | { node: string; plan: "wait" | "wiped" | "runs"; at: string; why: string };

/**
 * Finishing a wipe, for `node` whose reset was accepted at `at` (undefined: never), by what
 * its etcd shows `now`: Preparing and started since → wiped; down, or booting since → waited
 * for; not restarted since (the reset did not take) or never reset → reset now; Running and
 * started since → `runs` (bootstrapped or joined outside the journal: refused).
 */
export function wipeStep(
  node: string,
  at: string | undefined,
  look: ServiceLook,
  now: number,
): WipeStep {
  if (at === undefined) return { node, plan: "reset", why: "no reset accepted yet" };
  if (look.kind === "down") return { node, plan: "wait", at, why: describe(look) };
  const state = `etcd ${describe(look)}`;
  if (!startedWithin(look.info, now - Date.parse(at))) {
    return { node, plan: "reset", why: `${state}, not restarted since its reset` };
  }
  if (look.info.state === "Preparing") return { node, plan: "wiped", at, why: state };
  if (look.info.state === "Running") return { node, plan: "runs", at, why: state };
  return { node, plan: "wait", at, why: `${state}, booting since its reset` };
}

// ---- asking it: the looks, and the checks of a step run again ------------------------------

/**
 * What rejoin does with each node but the seed that the journal does not record as rejoined,
 * after looking at those whose reboot was accepted (`seedLook`: the seed's etcd, just seen).
 * The node an earlier run left rebooting comes first: one at a time. Logs each judgement.
 */
export async function planRejoins(
  ctx: Ctx,
  p: Progress,
  seed: string,
  seedLook: ServiceLook,
): Promise<{ todo: string[]; plans: Map<string, NodeStep> }> {
  const looks = await lookAtRejoins(ctx, p, seed, { now: ctx.deps.now(), seed: seedLook });
  const done = rejoinedNodes(p);
  const others = ctx.opts.nodes.filter((n) => n !== seed && !done.has(n));
  const plans = new Map(others.map((n) => [n, rejoinStep(p, n, looks)]));
  const order = { done: 0, await: 1, reboot: 2 } as const;
  const todo = others.sort((a, b) => order[plans.get(a)!.do] - order[plans.get(b)!.do]);
  for (const n of todo.filter((n) => p.rebootSent.has(n))) {
    const s = plans.get(n)!;
    const what = { done: "rejoined", await: "waiting for it", reboot: "rebooting it again" }[s.do];
    ctx.log.info(`${n}: ${s.why}: ${what}${s.do === "reboot" ? "" : ", not rebooted again"}`);
  }
  return { todo, plans };
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

/**
 * A wipe the journal records as finished is not sent again: done while the seed's etcd is not
 * running (next: bootstrap); etcd Running there contradicts the journal and is refused.
 */
export async function wipedEarlier(ctx: Ctx, progress: Progress): Promise<void> {
  const found = `the wipe of every node (${progress.done.get("wipe")})`;
  const seed = resumedSeed(ctx, progress, found);
  ctx.opts.seed = seed;
  const standing = whereItStands(progress, await lookAtSeed(ctx, seed, "wipe"), [], true);
  if (standing.next !== "bootstrap") {
    // Running: bootstrapped outside the journal, or by a bootstrap whose answer was cut off.
    const c = standing.contradiction ?? { journal: standing.journal, live: standing.live };
    throw new RefusedError(`The journal says ${c.journal}, but ${c.live}`, {
      hint: `if the bootstrap went through, continue with ${
        taskCommand(c === standing.contradiction ? "disarm" : "recover", ctx.opts, ["--yes"])
      }; --force to wipe again`,
    });
  }
  ctx.log.ok(`already done: ${ctx.opts.out}/journal.jsonl records ${found}; ${standing.live}`);
  ctx.continueWith = taskCommand("bootstrap", ctx.opts, ["--yes"]);
}

/**
 * Refuses (unless --force) to wipe once the journal records a bootstrap that was accepted
 * (its restore may be running, or done).
 */
export function refuseAfterBootstrap(ctx: Ctx): void {
  const p = readProgress(ctx.opts.out);
  const at = p.done.get("bootstrap") ?? p.bootstrapAccepted;
  if (!at) return;
  const message = `${ctx.opts.out}/journal.jsonl records a bootstrap that ${
    p.done.has("bootstrap") ? "succeeded" : "was accepted"
  } (${at}): wiping now destroys the restored etcd`;
  if (ctx.opts.force) {
    ctx.log.warn(`${message}; wiping anyway because of --force`);
    return;
  }
  // The recovery's own node list: a different one is refused by recover.
  const nodes = readManifest(ctx.opts.out)?.nodes ?? ctx.opts.nodes;
  throw new RefusedError(`Refusing to wipe: ${message}`, {
    hint: `continue with ${
      taskCommand("recover", { ...ctx.opts, nodes }, ["--yes"])
    } (it resumes); --force only to start over`,
  });
}

/**
 * Once the journal records the bootstrap as accepted, the seed is never Preparing again: with
 * its etcd Running there is nothing to wait for (exit 0); otherwise refused with both facts.
 */
export async function pastTheWait(ctx: Ctx, seed: string): Promise<boolean> {
  const progress = readProgress(ctx.opts.out);
  if (!(progress.bootstrapAccepted ?? progress.bootstrapCutOff) || ctx.opts.force) return false;
  const standing = whereItStands(progress, await lookAtSeed(ctx, seed, "wait"), [], true);
  if (["start", "bootstrap"].includes(standing.next)) return false; // cut off, not taken
  const journal = `${ctx.opts.out}/journal.jsonl`;
  if (standing.phase !== "bootstrap accepted" && !standing.contradiction) {
    ctx.log.ok(
      `nothing to wait for: ${journal} records that ${standing.journal}; ${standing.live}`,
    );
    ctx.continueWith = taskCommand(
      standing.next === "after" ? "after" : standing.next === "disarm" ? "disarm" : "bootstrap",
      ctx.opts,
      ["--yes"],
    );
    return true;
  }
  throw new RefusedError(
    `${journal} records that ${standing.journal}, but ${
      standing.contradiction?.live ?? standing.live
    }: it is not Preparing again`,
    { hint: `${taskCommand("bootstrap", ctx.opts, ["--yes"])} waits for its restore` },
  );
}

/**
 * A bootstrap the journal records as accepted is never sent again: with the seed's etcd
 * Running it is done (next: disarm); still restoring, its restore is waited for; otherwise
 * (Failed, or a recorded restore whose etcd no longer runs) refused with both facts, unless
 * --force.
 */
export async function bootstrappedEarlier(
  ctx: Ctx,
  seed: string,
  awaitRestore: () => Promise<void>,
): Promise<boolean> {
  const progress = readProgress(ctx.opts.out);
  const at = progress.done.get("bootstrap") ?? progress.bootstrapAccepted ??
    progress.bootstrapCutOff;
  if (!at || ctx.opts.force) return false;
  const journal = join(ctx.opts.out, "journal.jsonl");
  const looks = await lookAtSeed(ctx, seed, "bootstrap");
  const standing = whereItStands(progress, looks, ctx.opts.nodes, true);
  // a bootstrap whose answer was cut off, and whose effect the seed does not show: send it
  if (["start", "bootstrap", "finish wipe"].includes(standing.next)) return false;
  if (standing.next === "disarm" || standing.next === "after") {
    ctx.log.ok(`already done: ${journal} records the bootstrap of ${seed} (${at}); etcd Running`);
    ctx.continueWith = taskCommand(standing.next, ctx.opts, ["--yes"]);
    return true;
  }
  if (standing.next === "await restore") {
    ctx.log.info(`${journal}: ${standing.journal}; ${standing.live}: not sent again`);
    await step(ctx, "bootstrap", `Waiting for the restore of ${seed}`, awaitRestore);
    return true;
  }
  const live = standing.contradiction?.live ?? standing.live;
  throw new RefusedError(
    `${journal} records the bootstrap of ${seed} (${at}), but ${live}`,
    {
      hint: "if it is restarting, wait and run deno task verify; a second bootstrap needs a " +
        "wipe first (--force only to bootstrap again)",
    },
  );
}
