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
 *   - after     a verified backup of the restored etcd; the workers' kubelets restarted, one
 *               at a time (--no-kubelet-restart skips); the stuck pods listed (--restart-stuck
 *               restarts those a controller recreates). The one question covers it. After a
 *               smaller way back that changed etcd (replace, nospace): backup and pods only.
 *               If it fails, etcd is still recovered: exit as after's, naming deno task after
 *
 * Changes:  everything the steps change. Without --yes and without a terminal it prints the
 *           plan and changes nothing. --dry-run prints the plan as a bash script.
 * Usage:    deno task recover --nodes A,B,C [--seed N] [--vip V] [--out DIR] [--yes]
 *             [--no-kubelet-restart] [--restart-stuck]
 */

import { type Ctx, step } from "../lib/run/context.ts";
import type { Deps } from "../lib/run/deps.ts";
import { mainEntry, runTask, taskCommand, type TaskDef } from "../lib/recovery/main.ts";
import { confirm, printPlan } from "../lib/recovery/confirm.ts";
import { planSeed, verifiedSeedCopy } from "../lib/recovery/inspect.ts";
import { preflight } from "../lib/talos/preflight.ts";
import { readProgress } from "../lib/recovery/resume.ts";
import { describeJournal, whereItStands } from "../lib/recovery/phase.ts";
import { AfterPartError, afterPlan, afterRecover } from "../lib/recovery/after.ts";
import { SEED_VAR } from "../lib/run/command.ts";
import { checkBeforeWipe } from "../lib/recovery/wipe.ts";
import {
  afterPrompt,
  extractUnlessDone,
  type RecoverSteps,
  resume,
  resumedPlan,
  resumeWipe,
} from "../lib/recovery/resume_recover.ts";
import { waitPreparing } from "../lib/talos/cluster.ts";
import { smallerWayBack, triage } from "../lib/recovery/way_back.ts";
import { extract, extractPlan } from "./01_extract.ts";
import { statusPlan } from "./02_status.ts";
import { wipe, wipePlan } from "./03_wipe.ts";
import { waitPlan } from "./04_wait.ts";
import { bootstrap, bootstrapPlan, restorePlan } from "./05_bootstrap.ts";
import { disarm, disarmPlan } from "./06_disarm.ts";
import { rejoin, rejoinPlan } from "./07_rejoin.ts";
import { verify, verifyPlan } from "./08_verify.ts";

export const task: TaskDef = {
  name: "recover",
  summary:
    "run the whole runbook: extract, status, wipe, wait, bootstrap, disarm, rejoin, verify, after",
  usage:
    "  deno task recover --nodes A,B,C [--seed N] [--vip V] [--out DIR] [--yes] [--dry-run]\n" +
    "    [--no-kubelet-restart] [--restart-stuck]",
  run: async (ctx) => {
    if (ctx.opts.dryRun) return printPlan(ctx, recoverPlan(ctx));
    if (!ctx.deps.isTerminal) await confirm(ctx, "recover", () => recoverPlan(ctx)); // plan unless --yes
    try {
      await recover(ctx);
    } catch (error) {
      // a re-run of recover resumes from the journal: that is the command to continue with,
      // unless the step named a compound command (a failed restore needs a new wipe first),
      // or etcd is recovered and only the after part is left (deno task after does it)
      if (
        ctx.continueWith && !ctx.continueWith.includes("&&") && !(error instanceof AfterPartError)
      ) {
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
      // a re-run resumes (lib/recovery/resume_recover.ts); the steps are this file's
      return await (standing.next === "finish wipe"
        ? resumeWipe(ctx, progress, rest(ctx))
        : resume(ctx, progress, rest(ctx)));
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
    () => extractUnlessDone(ctx, () => extract(ctx)),
  );
  // Which way back? The least destructive one the evidence supports (lib/recovery/triage.ts).
  const way = await step(
    ctx,
    "triage",
    "Which way back? (every node and the copies)",
    () => triage(ctx, looks),
  );
  if (way.procedure !== "rebuild") return await smallerWayBack(ctx, way.decision, way.procedure);
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
    `WIPE etcd on ${nodes.join(", ")} and restore it from ${seed} (${file}), then ${
      afterPrompt(ctx, true)
    }`,
    () => recoverPlan(ctx),
  );
  ctx.opts.yes = true; // asked once for the whole run, the after part included
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
  ctx.clusterState = recovered(seed);
  ctx.log.ok(`recovered: etcd restored from ${seed} and running on ${ctx.opts.nodes.join(", ")}`);
  await afterTheRestore(ctx, seed);
}

/** The after part: a verified backup, the workers' kubelets, the stuck pods. */
async function afterTheRestore(ctx: Ctx, seed: string): Promise<void> {
  await afterRecover(ctx, recovered(seed), { seed });
}

const recovered = (seed: string) =>
  `recovered: etcd restored from ${seed}, every node a voter, no alarm`;

/** The steps a resume continues with. */
function rest(ctx: Ctx): RecoverSteps {
  return {
    fromBootstrap: (seed, file) => fromBootstrap(ctx, seed, file),
    fromDisarm: (seed) => fromDisarm(ctx, seed),
    after: (seed) => afterTheRestore(ctx, seed),
    plan: () => recoverPlan(ctx),
  };
}

/** The whole procedure as one bash script. */
export function recoverPlan(ctx: Ctx): string[] {
  // what a run with this OUT would do: a resume starts after the steps the journal records
  const progress = ctx.opts.force ? undefined : readProgress(ctx.opts.out);
  const seedKnown = { ...ctx, opts: { ...ctx.opts, seed: ctx.opts.seed ?? progress?.seed } };
  const noSeedLine = (lines: string[]) => lines.filter((l) => !l.startsWith("SEED="));
  const after = afterPlan(seedKnown, seedKnown.opts.seed ?? SEED_VAR);
  const fromDisarm = [
    ...noSeedLine(disarmPlan(seedKnown)),
    "",
    ...noSeedLine(rejoinPlan(seedKnown)),
    "",
    ...verifyPlan(seedKnown),
    "",
    ...after,
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
    "# instead (replace a bad member, defrag, disarm); --full forces this rebuild. Either way it",
    "# ends with the after part (below; after replace or defrag without the kubelet restarts)",
  ].join("\n");
  const resumed = resumedPlan(progress, header, {
    restore: () => restorePlan(seedKnown),
    fromDisarm: () => fromDisarm,
    fromWait: () => fromWait,
    wipe: () => wipePlan(ctx),
    after: () => after,
  }, ctx.opts.nodes);
  if (resumed) return resumed;
  return [
    header,
    ...extractPlan(ctx),
    "",
    ...statusPlan(ctx),
    ...planSeed(ctx).lines,
    "",
    ...wipePlan(ctx, { gated: !ctx.opts.seed }),
    "",
    ...fromWait,
  ];
}

export function main(args: string[], deps?: Deps): Promise<number> {
  return runTask(task, args, deps);
}

if (import.meta.main) await mainEntry(task);
