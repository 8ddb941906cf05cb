/**
 * recover — the whole runbook, in order, with the checks a tired person forgets.
 *
 *   1 extract   copy every node's db (an extraction already complete in OUT is reused)
 *   2 status    read every copy; the seed is the highest revision (--seed is checked)
 *   - safety    refuse without an intact seed copy, with a missing copy, a lower --seed, or
 *               a healthy cluster (--force overrides all but the first); ask once
 *   3 wipe      reset every node at once; wait until each came back empty
 *   4 wait      the seed's etcd is Preparing
 *   5 bootstrap restore the seed from its copy; wait until etcd runs (exit 0 is not enough)
 *   6 disarm    clear the CORRUPT alarm that came back inside the db
 *   7 rejoin    wait until the others vote again; reboot only a node that will not rejoin
 *   8 verify    members, alarms, the VIP, the Kubernetes API
 *
 * Changes:  everything the steps change. Without --yes and without a terminal it prints the
 *           plan and changes nothing. --dry-run prints the plan as a bash script.
 * Usage:    deno task recover --nodes A,B,C [--seed N] [--vip V] [--out DIR] [--yes]
 */

import { type Ctx, SKIPPED, step } from "../lib/run/context.ts";
import type { Deps } from "../lib/run/deps.ts";
import { mainEntry, runTask, taskCommand, type TaskDef } from "../lib/recovery/main.ts";
import { confirm, printPlan } from "../lib/recovery/confirm.ts";
import { readManifest } from "../lib/recovery/manifest.ts";
import { formatMs } from "../lib/run/poll.ts";
import { planSeed } from "../lib/recovery/inspect.ts";
import { preflight } from "../lib/talos/preflight.ts";
import {
  describeProgress,
  type Progress,
  readProgress,
  resumedSeed,
  unfinishedWipe,
} from "../lib/recovery/resume.ts";
import { describeJournal, lookAtSeed, whereItStands } from "../lib/recovery/phase.ts";
import { RefusedError } from "../lib/run/errors.ts";
import { extract, extractPlan } from "./01_extract.ts";
import { statusPlan } from "./02_status.ts";
import { wipe, wipePlan } from "./03_wipe.ts";
import { checkBeforeFinishing, checkBeforeWipe, finishWipe } from "../lib/recovery/wipe.ts";
import { waitPlan } from "./04_wait.ts";
import { waitPreparing } from "../lib/talos/cluster.ts";
import { awaitRestore, bootstrap, bootstrapPlan, restorePlan } from "./05_bootstrap.ts";
import { verifiedSeedCopy } from "../lib/recovery/inspect.ts";
import { disarm, disarmPlan } from "./06_disarm.ts";
import { rejoin, rejoinPlan } from "./07_rejoin.ts";
import { verify, verifyPlan } from "./08_verify.ts";
import { triage } from "../lib/recovery/way_back.ts";
import { smallerWayBack } from "../lib/recovery/way_back.ts";

export const task: TaskDef = {
  name: "recover",
  summary: "run the whole runbook: extract, status, wipe, wait, bootstrap, disarm, rejoin, verify",
  usage: "  deno task recover --nodes A,B,C [--seed N] [--vip V] [--out DIR] [--yes] [--dry-run]",
  run: async (ctx) => {
    if (ctx.opts.dryRun) return printPlan(ctx, recoverPlan(ctx));
    if (!ctx.deps.isTerminal) await confirm(ctx, "recover", () => recoverPlan(ctx)); // plan unless --yes
    try {
      await recover(ctx);
    } catch (error) {
      // a re-run of recover resumes from the journal: that is the command to continue with,
      // unless the step named a compound command (a failed restore needs a new wipe first)
      if (ctx.continueWith && !ctx.continueWith.includes("&&")) {
        ctx.continueWith = taskCommand("recover", ctx.opts, ["--yes"]);
      }
      throw error;
    }
  },
};

export async function recover(ctx: Ctx): Promise<void> {
  const { nodes, out } = ctx.opts;
  const progress = readProgress(out);
  // Where the journal says this recovery stands (looked at live once the checks pass).
  const standing = whereItStands(progress, { now: ctx.deps.now() }, nodes, true);
  if (standing.next !== "start") {
    if (!ctx.opts.force) {
      return await (standing.next === "finish wipe"
        ? resumeWipe(ctx, progress)
        : resume(ctx, progress));
    }
    ctx.log.warn(
      `${out}/journal.jsonl records ${
        describeJournal(progress)
      }: --force starts over and wipes again`,
    );
  }
  const looks = await step(
    ctx,
    "preflight",
    "Pre-flight checks",
    () => preflight(ctx, "preflight"),
  );
  await step(
    ctx,
    "extract",
    `Extracting etcd db from ${nodes.length} nodes into ${out}`,
    async () => {
      const manifest = readManifest(out);
      if (manifest && nodes.every((n) => manifest.copies[n])) {
        const oldest = Math.min(...nodes.map((n) => Date.parse(manifest.copies[n].copiedAt)));
        ctx.log.ok(`reusing the complete extraction in ${out} (${nodes.length} copies)`);
        for (const n of nodes.filter((n) => manifest.copies[n].unreadable)) {
          ctx.log.warn(
            `${n}: its copy is not a readable etcd db (${manifest.copies[n].unreadable})`,
          );
        }
        ctx.log.warn(
          `those copies were made ${formatMs(ctx.deps.now() - oldest)} ago (${
            new Date(oldest).toISOString()
          }): anything written since is not in them; extract into a new --out for fresh copies`,
        );
        return SKIPPED;
      }
      await extract(ctx);
      return undefined;
    },
  );
  // Which way back? The least destructive one the evidence supports (lib/recovery/triage.ts).
  const way = await step(
    ctx,
    "triage",
    "Which way back? (every node and the copies)",
    () => triage(ctx, looks),
  );
  if (way.procedure !== "rebuild") return await smallerWayBack(ctx, way.decision);
  const seed = await step(
    ctx,
    "safety",
    "Choosing the seed and checking the safety rules",
    () => checkBeforeWipe(ctx, way.looked),
  );
  ctx.opts.seed = seed;
  const file = await verifiedSeedCopy(ctx, seed);
  await confirm(
    ctx,
    `WIPE etcd on ${nodes.join(", ")} and restore it from ${seed} (${file})`,
    () => recoverPlan(ctx),
  );
  ctx.opts.yes = true; // asked once for the whole run
  await step(ctx, "wipe", `Wiping ${nodes.length} nodes at once`, () => wipe(ctx));
  await fromBootstrap(ctx, seed, file);
}

/** Steps 4-8 (wait, bootstrap, disarm, rejoin, verify). */
async function fromBootstrap(ctx: Ctx, seed: string, file: string): Promise<void> {
  await step(
    ctx,
    "wait",
    `Waiting for etcd on ${seed} to be Preparing`,
    () => waitPreparing(ctx, seed),
  );
  await step(
    ctx,
    "bootstrap",
    `Restoring etcd on ${seed} from ${file}`,
    () => bootstrap(ctx, seed, file),
  );
  await fromDisarm(ctx, seed);
}

/** Steps 6-8 (disarm, rejoin, verify): each re-checks the live state and is safe to repeat. */
async function fromDisarm(ctx: Ctx, seed: string): Promise<void> {
  await step(ctx, "disarm", `Clearing alarms on ${seed}`, () => disarm(ctx, seed));
  await rejoin(ctx, seed);
  ctx.continueWith = taskCommand("verify", ctx.opts);
  await step(ctx, "verify", "Verifying the control plane", () => verify(ctx, seed));
  ctx.continueWith = undefined;
  ctx.clusterState = `recovered: etcd restored from ${seed}, every node a voter, no alarm`;
  ctx.log.ok(`recovered: etcd restored from ${seed} and running on ${ctx.opts.nodes.join(", ")}`);
}

/**
 * A re-run after the wipe finished: never wipe again, and never bootstrap again once the
 * bootstrap was accepted. Looks at the seed's etcd first and says what it found; where the
 * recovery stands comes from the journal and that look (lib/recovery/phase.ts); a live state that
 * contradicts the journal is refused, with both facts.
 */
async function resume(ctx: Ctx, progress: Progress): Promise<void> {
  const what = describeJournal(progress);
  const startOver = "to start over (wiping again), pass --force or use a new --out";
  const seed = resumedSeed(ctx, progress, what);
  ctx.opts.seed = seed;
  ctx.log.step(`Resuming from ${ctx.opts.out}/journal.jsonl: ${what}`);
  const standing = whereItStands(
    progress,
    await lookAtSeed(ctx, seed, "resume"),
    ctx.opts.nodes,
    true,
  );
  ctx.log.info(`live: ${standing.live}`);
  ctx.log.info(`where it stands: ${standing.phase}`);
  const c = standing.contradiction;
  if (c) {
    const restoreFailed = standing.phase === "bootstrap accepted";
    if (restoreFailed) ctx.continueWith = restartRestore(ctx, seed);
    throw new RefusedError(`The journal says ${c.journal}, but ${c.live}`, {
      hint: restoreFailed
        ? `a failed restore leaves files behind: reset the seed again, then bootstrap (${ctx.continueWith})`
        : standing.phase === "wiped"
        ? `if the bootstrap went through, continue with ${
          taskCommand("disarm", ctx.opts, ["--yes"])
        }; ${startOver}`
        : `wait and run again if it is restarting; ${startOver}`,
    });
  }
  const next = standing.next;
  ctx.clusterState = next === "bootstrap"
    ? `every node was wiped earlier; resuming with the bootstrap of ${seed}`
    : next === "await restore"
    ? `the bootstrap of ${seed} was accepted earlier; resuming with its restore, then disarm, rejoin, verify`
    : `etcd runs on ${seed}, restored earlier; resuming with disarm, rejoin, verify`;
  ctx.continueWith = taskCommand("recover", ctx.opts, ["--yes"]);
  const file = await verifiedSeedCopy(ctx, seed);
  const from = next === "bootstrap"
    ? "bootstrap"
    : next === "await restore"
    ? "the restore"
    : "disarm";
  await confirm(ctx, `continue the recovery from ${from} (seed ${seed})`, () => recoverPlan(ctx));
  ctx.opts.yes = true;
  if (next === "bootstrap") return await fromBootstrap(ctx, seed, file);
  if (next === "await restore") {
    await step(
      ctx,
      "bootstrap",
      `Waiting for the restore of ${seed} (bootstrap sent ${
        progress.bootstrapAccepted ?? progress.bootstrapCutOff
      }; not sent again)`,
      () => awaitRestore(ctx, seed, file),
    );
  }
  await fromDisarm(ctx, seed);
}

/** The command that resets the seed again and bootstraps it: after a failed restore. */
function restartRestore(ctx: Ctx, seed: string): string {
  return `${
    taskCommand("wipe", { ...ctx.opts, nodes: [seed], seed: undefined }, ["--force", "--yes"])
  } && ${taskCommand("bootstrap", ctx.opts, ["--seed", seed, "--yes"])}`;
}

/**
 * A re-run after a wipe that did not finish (resets were accepted, then a node did not come
 * back in time, or the run was stopped): no pre-flight (a rebooting node does not answer it),
 * no new copies (the nodes are being wiped); the wipe is finished, then steps 4-8 follow.
 */
async function resumeWipe(ctx: Ctx, progress: Progress): Promise<void> {
  const found = unfinishedWipe(progress);
  const { seed, file } = await checkBeforeFinishing(ctx, progress, found);
  ctx.opts.seed = seed;
  ctx.log.step(`Resuming from ${ctx.opts.out}/journal.jsonl: ${found}`);
  ctx.continueWith = taskCommand("recover", ctx.opts, ["--yes"]);
  await confirm(
    ctx,
    `finish the wipe of ${ctx.opts.nodes.join(", ")} and restore etcd from ${seed} (${file})`,
    () => recoverPlan(ctx),
  );
  ctx.opts.yes = true;
  await step(
    ctx,
    "wipe",
    `Finishing the wipe of ${ctx.opts.nodes.length} nodes`,
    () => finishWipe(ctx, progress),
  );
  await fromBootstrap(ctx, seed, file);
}

/** The whole procedure as one bash script. */
export function recoverPlan(ctx: Ctx): string[] {
  // what a run with this OUT would do: a resume starts after the steps the journal records
  const progress = ctx.opts.force ? undefined : readProgress(ctx.opts.out);
  const seedKnown = { ...ctx, opts: { ...ctx.opts, seed: ctx.opts.seed ?? progress?.seed } };
  const noSeedLine = (lines: string[]) => lines.filter((l) => !l.startsWith("SEED="));
  const fromDisarm = [
    ...noSeedLine(disarmPlan(seedKnown)),
    "",
    ...noSeedLine(rejoinPlan(seedKnown)),
    "",
    ...verifyPlan(seedKnown),
  ];
  const fromWait = [
    ...noSeedLine(waitPlan(seedKnown)),
    "",
    ...noSeedLine(bootstrapPlan(seedKnown)),
    "",
    ...fromDisarm,
  ];
  const header = [
    `# etcd recovery plan for ${ctx.opts.nodes.join(", ")} (talos-etcd-recovery): the full rebuild`,
    "# recover diagnoses first (deno task diagnose): where a smaller way back exists it takes that",
    "# instead (replace a bad member, defrag, disarm); --full forces this rebuild",
  ].join("\n");
  if (progress?.seed && progress.bootstrapAccepted && !progress.done.has("bootstrap")) {
    return [
      header,
      `# resuming: ${describeJournal(progress)} (never sent again)`,
      ...restorePlan(seedKnown),
      "",
      ...fromDisarm,
    ];
  }
  if (progress?.seed && progress.done.has("bootstrap")) {
    return [
      header,
      `# resuming: ${describeProgress(progress, ["wipe", "bootstrap", "disarm"])}`,
      ...fromDisarm,
    ];
  }
  if (progress?.seed && progress.done.has("wipe")) {
    return [header, `# resuming: ${describeProgress(progress, ["wipe"])}`, ...fromWait];
  }
  if (progress?.seed && progress.resetSent.size > 0) {
    return [
      header,
      `# resuming: reset sent to ${[...progress.resetSent.keys()].join(", ")}, wipe not finished`,
      "# (a node whose etcd still runs is reset again; the others are waited for)",
      ...wipePlan(ctx).slice(1),
      "",
      ...fromWait,
    ];
  }
  return [
    header,
    ...extractPlan(ctx),
    "",
    ...statusPlan(ctx),
    ...planSeed(ctx).lines,
    "",
    ...wipePlan(ctx),
    "",
    ...fromWait,
  ];
}

export function main(args: string[], deps?: Deps): Promise<number> {
  return runTask(task, args, deps);
}

if (import.meta.main) await mainEntry(task);
