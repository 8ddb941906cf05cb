/**
 * Step 3 — wipe: reset every control-plane node at once, so no broken node can sync the bad
 * state back.
 *
 * What:     every node at once, `talosctl -e N -n N reset --system-labels-to-wipe EPHEMERAL
 *           --graceful=false --reboot --wait=false` (graceful needs a working etcd; --wait
 *           is known to hang), then polls each node until it went down and came back with
 *           an empty etcd (STATE Preparing, event history younger than the reset).
 * Changes:  DESTROYS etcd on every node. The copies in OUT are then the only data.
 * Refuses:  without an intact copy of the seed (never overridable); while any node's copy is
 *           missing or unreadable, a --seed below the highest revision, or a healthy cluster
 *           (each overridable with --force). Asks first unless --yes.
 * Re-run:   a wipe not finished is finished (lib/recovery/phase.ts wipeStep: a node whose reset took
 *           is not reset again); a finished one sends nothing; after an accepted bootstrap,
 *           refused.
 * Raw:      talosctl -e 192.168.53.10 -n 192.168.53.10 reset --system-labels-to-wipe EPHEMERAL --graceful=false --reboot --wait=false
 * Usage:    deno task wipe --nodes A,B,C [--seed N] [--out DIR] [--yes] [--force] [--timeout 10m]
 */

import { type Ctx, step } from "../lib/run/context.ts";
import type { Deps } from "../lib/run/deps.ts";
import { RefusedError, StepError } from "../lib/run/errors.ts";
import {
  checkEveryCopy,
  inspectCopies,
  type Inspection,
  resolveSeed,
} from "../lib/recovery/inspect.ts";
import { mainEntry, runTask, taskCommand, type TaskDef } from "../lib/recovery/main.ts";
import { confirm, printPlan } from "../lib/recovery/confirm.ts";
import {
  askCluster,
  type ClusterView,
  describe,
  healthyEvidence,
  lookAtEtcd,
  membersOutside,
  SERVICE_POLL_MS,
  startedWithin,
} from "../lib/talos/cluster.ts";
import { poll } from "../lib/run/poll.ts";
import { sub, talos } from "../lib/talos/talosctl.ts";
import { etcdIsPlan, parallelPlan, talosPlan, waitForPlan } from "../lib/talos/plan.ts";
import { tail } from "../lib/run/command.ts";
import {
  type Progress,
  readProgress,
  resumedSeed,
  unfinishedWipe,
} from "../lib/recovery/resume.ts";
import { refuseAfterBootstrap, wipedEarlier, wipeStep } from "../lib/recovery/phase.ts";
import { preflight } from "../lib/talos/preflight.ts";
import { statusTable } from "../lib/recovery/inspect.ts";
import { verifiedSeedCopy } from "../lib/recovery/inspect.ts";

export const task: TaskDef = {
  name: "wipe",
  summary: "reset every control-plane node at once (EPHEMERAL): DESTROYS etcd everywhere",
  usage: "  deno task wipe --nodes A,B,C [--seed N] [--out DIR] [--yes] [--force] [--timeout 10m]",
  run: async (ctx) => {
    if (ctx.opts.dryRun) return printPlan(ctx, wipePlan(ctx));
    // Before the pre-flight asks the nodes anything: a restored etcd is never wiped again.
    refuseAfterBootstrap(ctx);
    const progress = readProgress(ctx.opts.out);
    if (progress.resetSent.size > 0 && !ctx.opts.force) {
      // A wipe an earlier run started: a rebooting node would fail the pre-flight.
      const found = unfinishedWipe(progress);
      const { seed } = await checkBeforeFinishing(ctx, progress, found);
      ctx.opts.seed = seed;
      ctx.log.step(`Resuming from ${ctx.opts.out}/journal.jsonl: ${found} (--force starts over)`);
      ctx.continueWith = taskCommand("wipe", ctx.opts, ["--yes"]);
      await confirm(ctx, `finish the wipe of ${ctx.opts.nodes.join(", ")}`, () => wipePlan(ctx));
      await step(
        ctx,
        "wipe",
        `Finishing the wipe of ${ctx.opts.nodes.length} nodes`,
        () => finishWipe(ctx, progress),
      );
      ctx.continueWith = taskCommand("bootstrap", ctx.opts, ["--yes"]);
      return;
    }
    if (progress.done.has("wipe") && !ctx.opts.force) return await wipedEarlier(ctx, progress);
    await step(ctx, "preflight", "Pre-flight checks", () => preflight(ctx, "preflight"));
    const seed = await step(
      ctx,
      "safety",
      "Checking the copies before wiping",
      () => checkBeforeWipe(ctx),
    );
    await confirm(
      ctx,
      `wipe etcd on ${ctx.opts.nodes.join(", ")} (seed ${seed})`,
      () => wipePlan(ctx),
    );
    await step(ctx, "wipe", `Wiping ${ctx.opts.nodes.length} nodes at once`, () => wipe(ctx));
  },
};

/**
 * The safety rules: an intact seed copy, every copy usable, the seed the highest revision,
 * the cluster not healthy. Returns the seed.
 */
export async function checkBeforeWipe(
  ctx: Ctx,
  /** What recover has looked at already (the copies, the cluster): not asked again. */
  looked?: { insp: Inspection; view: ClusterView },
): Promise<string> {
  refuseAfterBootstrap(ctx);
  const insp = looked?.insp ?? await inspectCopies(ctx);
  if (!looked) ctx.log.raw(statusTable(insp, ctx.opts.seed));
  const seed = resolveSeed(ctx, insp);
  checkEveryCopy(ctx, insp);
  ctx.log.ok(
    `seed ${seed}: copy intact, revision ${
      insp.rows.find((r) => r.node === seed)?.status?.revision
    }`,
  );
  const view = looked?.view ?? await askCluster(ctx, seed, "safety");
  const outside = membersOutside(view, ctx.opts.nodes);
  if (outside.length > 0) {
    const message = `etcd lists members that are not in --nodes: ${outside.join(", ")}`;
    if (!ctx.opts.force) {
      throw new RefusedError(
        `Refusing to wipe: ${message}; such a node would keep the old cluster, and its copy was not read`,
        {
          hint: "add the node to --nodes (and extract again), or --force if it is gone for good",
        },
      );
    }
    ctx.log.warn(`${message}; going on because of --force`);
  }
  if (view && !view.members) {
    ctx.log.warn(`could not list etcd members: not checked that --nodes names them all`);
  }
  // recover's triage has judged health from every node already (a crash-looping member is
  // still listed as a voter): only a wipe on its own asks here
  const healthy = looked ? undefined : healthyEvidence(view, ctx.opts.nodes);
  if (healthy) {
    if (!ctx.opts.force) {
      throw new RefusedError(`Refusing to wipe a healthy cluster: ${healthy}`, {
        hint: "nothing to recover; pass --force only if you know etcd is broken anyway",
      });
    }
    ctx.log.warn(`the cluster looks healthy (${healthy}); wiping anyway because of --force`);
  }
  return seed;
}

/** Resets every node at once and waits until each came back with an empty etcd. */
export async function wipe(ctx: Ctx): Promise<void> {
  const nodes = ctx.opts.nodes;
  const sentAt = ctx.deps.now();
  ctx.clusterState = `reset sent to ${
    nodes.join(", ")
  }: etcd is being destroyed; the copies in ${ctx.opts.out} are the only data`;
  ctx.continueWith = taskCommand("wipe", ctx.opts, ["--yes"]);
  await sendResets(ctx, nodes, (failed) => {
    const done = nodes.filter((n) => !failed.includes(n));
    return `reset accepted by ${done.join(", ") || "no node"}; FAILED on ${
      failed.join(", ")
    } (still holding the old etcd)`;
  });
  await allWiped(ctx, nodes.map((node) => [node, () => awaitWiped(ctx, node, sentAt)]));
  ctx.clusterState = everyNodeWiped(ctx);
  ctx.continueWith = taskCommand("bootstrap", ctx.opts, ["--yes"]);
}

/**
 * Before finishing a wipe an earlier run started (`found` says what the journal holds): the
 * node list of the recovery, and the seed the earlier run chose with its copy still intact.
 * Returns the seed and its copy.
 */
export async function checkBeforeFinishing(
  ctx: Ctx,
  progress: Progress,
  found: string,
): Promise<{ seed: string; file: string }> {
  const seed = resumedSeed(ctx, progress, found);
  return { seed, file: await verifiedSeedCopy(ctx, seed) };
}

/**
 * Finishes a wipe an earlier run started. For each node, by what it answers now and when its
 * reset was accepted (the journal):
 * - etcd Preparing and started after the reset: wiped;
 * - down, or booting since the reset: waited for until it is Preparing;
 * - answering with an etcd that has not restarted since the reset (the reset did not take), or
 *   no reset accepted at all: reset now;
 * - etcd Running and started after the reset: bootstrapped or joined since, outside this
 *   journal: refused before anything is sent.
 */
export async function finishWipe(ctx: Ctx, progress: Progress): Promise<void> {
  const nodes = ctx.opts.nodes;
  const sent = progress.resetSent;
  // The labels of the first reset (the pre-flight that finds an ETCD partition does not run).
  for (const [node, labels] of progress.resetLabels) {
    if (!ctx.wipeLabels.has(node)) ctx.wipeLabels.set(node, labels);
  }
  ctx.clusterState = `reset sent earlier to ${
    [...sent.keys()].join(", ")
  }: etcd is being destroyed; the copies in ${ctx.opts.out} are the only data`;
  const now = ctx.deps.now();
  const looks = await Promise.all(nodes.map((n) => lookAtEtcd(ctx, n, "wipe")));
  const plans = nodes.map((node, i) => wipeStep(node, sent.get(node), looks[i], now));
  const running = plans.filter((p) => p.plan === "runs");
  if (running.length > 0) {
    throw new RefusedError(
      `etcd runs on ${
        running.map((p) => `"${p.node}"`).join(", ")
      } and started after its reset: bootstrapped or joined since, which this journal does not record`,
      {
        hint: `if the restore went through, continue with ${
          taskCommand("disarm", ctx.opts, ["--yes"])
        } and rejoin; to wipe again, pass --force`,
      },
    );
  }
  for (const p of plans) {
    const what = p.plan === "wiped"
      ? "wiped"
      : p.plan === "reset"
      ? "resetting it (again)"
      : "waiting for it to come back wiped";
    ctx.log.info(`${p.node}: reset sent ${sent.get(p.node) ?? "never"}; ${p.why}: ${what}`);
  }
  const again = plans.filter((p) => p.plan === "reset").map((p) => p.node);
  const sentAt = ctx.deps.now();
  await sendResets(
    ctx,
    again,
    (failed) =>
      `reset sent earlier to ${[...sent.keys()].join(", ")}; sent again to ${
        again.join(", ")
      } and FAILED on ${failed.join(", ")} (still holding the old etcd)`,
  );
  await allWiped(
    ctx,
    plans.filter((p) => p.plan !== "wiped").map((p) => [
      p.node,
      () => awaitWiped(ctx, p.node, p.plan === "reset" ? sentAt : Date.parse(p.at)),
    ]),
    plans.filter((p) => p.plan === "wiped").map((p) => p.node),
  );
  ctx.clusterState = everyNodeWiped(ctx);
}

/**
 * Resets `nodes` at once, each with its labels; when any reset is refused, the cluster state
 * becomes `failedState(failed)` and the step fails naming each failed node and why.
 */
async function sendResets(
  ctx: Ctx,
  nodes: string[],
  failedState: (failed: string[]) => string,
): Promise<void> {
  const results = await Promise.all(
    nodes.map((n) =>
      talos(ctx, n, sub.reset(ctx.wipeLabels.get(n)), { step: "wipe", mutating: true })
    ),
  );
  const failed = nodes.filter((_, i) => results[i].code !== 0);
  if (failed.length === 0) return;
  ctx.clusterState = failedState(failed);
  const why = (n: string) => {
    const r = results[nodes.indexOf(n)];
    return tail(r.stderr, 1) || `exit ${r.code}`;
  };
  throw new StepError(
    `Reset failed on ${failed.map((n) => `"${n}": ${why(n)}`).join("; ")}`,
    {
      hint: "fix the failing node and run this again: resetting an already wiped node is harmless",
    },
  );
}

function everyNodeWiped(ctx: Ctx): string {
  return `every node wiped (${
    ctx.opts.nodes.join(", ")
  }): etcd is empty and waiting for bootstrap; the copies in ${ctx.opts.out} are the only data`;
}

/**
 * Runs every node's wait; when one fails, the cluster state names the nodes seen wiped and
 * those not (yet) seen wiped, rather than only that resets were sent.
 */
async function allWiped(
  ctx: Ctx,
  waits: [string, () => Promise<void>][],
  seenAlready: string[] = [],
): Promise<void> {
  const seen: string[] = [...seenAlready];
  const results = await Promise.allSettled(waits.map(async ([node, wait]) => {
    await wait();
    seen.push(node);
  }));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (!failed) return;
  const notSeen = waits.map(([n]) => n).filter((n) => !seen.includes(n));
  ctx.clusterState = [
    `reset sent to every node`,
    seen.length > 0 ? `seen wiped (etcd Preparing): ${seen.join(", ")}` : "",
    `not seen wiped: ${notSeen.join(", ")}`,
    `the copies in ${ctx.opts.out} are the only data`,
  ].filter(Boolean).join("; ");
  throw failed.reason;
}

/**
 * Polls `node` until it went down, or its etcd started after `sentAt` (its reset), and it is
 * back with etcd Preparing (empty, waiting).
 */
async function awaitWiped(ctx: Ctx, node: string, sentAt: number): Promise<void> {
  let wentDown = false;
  await poll(ctx, {
    what: `"${node}" to reboot wiped (etcd Preparing)`,
    intervalMs: SERVICE_POLL_MS,
    timeoutMs: ctx.opts.timeoutMs,
    check: async () => {
      const look = await lookAtEtcd(ctx, node, "wipe");
      if (look.kind === "down") wentDown = true;
      const fresh = look.kind === "up" &&
        (wentDown || startedWithin(look.info, ctx.deps.now() - sentAt));
      if (look.kind === "up" && fresh && look.info.state === "Preparing") {
        return { done: true, value: undefined };
      }
      const note = look.kind === "up" && !fresh ? " — not rebooted yet" : "";
      return { done: false, state: `${node}: ${describe(look)}${note}` };
    },
  });
}

/** The commands wipe runs, as bash. */
export function wipePlan(ctx: Ctx): string[] {
  return [
    "# Step 3: wipe every node at once (DESTROYS etcd; the copies are the only data now)",
    "# (a node with a dedicated ETCD partition needs --system-labels-to-wipe ETCD as well)",
    ...parallelPlan(ctx.opts.nodes.map((n) => talosPlan(n, sub.reset()))),
    "# then, for each node, until it came back with an empty etcd:",
    ...ctx.opts.nodes.map((n) =>
      waitForPlan(
        `${n} to come back wiped (etcd Preparing)`,
        ctx.opts.timeoutMs / 1000,
        etcdIsPlan(n, "STATE", "Preparing"),
      )
    ),
  ];
}

export function main(args: string[], deps?: Deps): Promise<number> {
  return runTask(task, args, deps);
}

if (import.meta.main) await mainEntry(task);
