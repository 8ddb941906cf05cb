/**
 * recover's re-runs (tasks/recover.ts tells the story): reusing a complete extraction,
 * finishing a wipe an earlier run started, resuming after the wipe from where the journal and
 * the seed's etcd say the recovery stands, and the plan such a resume prints. The steps
 * themselves are the tasks': they come in as `RecoverSteps`.
 */

import { afterProgress, SNAPSHOT_STEP } from "./after.ts";
import { type Ctx, SKIPPED, step } from "../run/context.ts";
import { RefusedError } from "../run/errors.ts";
import { formatMs } from "../run/poll.ts";
import { taskCommand } from "./main.ts";
import { confirm } from "./confirm.ts";
import { readManifest } from "./manifest.ts";
import { verifiedSeedCopy } from "./inspect.ts";
import { describeProgress, type Progress, resumedSeed, unfinishedWipe } from "./resume.ts";
import { describeJournal, lookAtSeed, whereItStands } from "./phase.ts";
import { checkBeforeFinishing, finishWipe } from "./wipe.ts";
import { awaitRestore, restartRestore } from "./bootstrap.ts";

/**
 * What the after part does, for the one prompt of recover that covers it: `kubelets` false
 * after a procedure that lost no write.
 */
export function afterPrompt(ctx: Ctx, kubelets: boolean): string {
  // a resumed run says what it will not do again (see `after`)
  const progress = afterProgress(ctx.opts.out);
  const restarted = [...progress.restarted];
  return [
    progress.done.has(SNAPSHOT_STEP)
      ? "keep the verified backup taken earlier"
      : "take a verified backup",
    kubelets && !ctx.opts.noKubeletRestart
      ? restarted.length > 0
        ? `restart the kubelet of each other worker (not ${
          restarted.join(", ")
        } again), one at a time`
        : "restart the kubelet of each worker, one at a time"
      : "",
    ctx.opts.restartStuck
      ? "delete the stuck pods a controller recreates, one at a time"
      : "list the stuck pods",
  ].filter(Boolean).join(", ");
}

/** The parts of the procedure a resume continues with (tasks/recover.ts). */
export interface RecoverSteps {
  /** Steps 4-8 (wait, bootstrap, disarm, rejoin, verify). */
  fromBootstrap(seed: string, file: string): Promise<void>;
  /** Steps 6-8 (disarm, rejoin, verify), then the after part. */
  fromDisarm(seed: string): Promise<void>;
  /** The after part alone (verify passed in an earlier run). */
  after(seed: string): Promise<void>;
  /** The whole plan, for the prompt. */
  plan(): string[];
}

/**
 * The extraction step of recover: an extraction already complete in OUT is reused (with a
 * warning saying how old it is), else `extract` runs.
 */
export async function extractUnlessDone(
  ctx: Ctx,
  extract: () => Promise<unknown>,
): Promise<typeof SKIPPED | undefined> {
  const { nodes, out } = ctx.opts;
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
  await extract();
  return undefined;
}

/**
 * A re-run after the wipe finished: never wipe again, and never bootstrap again once the
 * bootstrap was accepted. Looks at the seed's etcd first and says what it found; where the
 * recovery stands comes from the journal and that look (lib/recovery/phase.ts); a live state that
 * contradicts the journal is refused, with both facts.
 */
export async function resume(ctx: Ctx, progress: Progress, steps: RecoverSteps): Promise<void> {
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
    : next === "after"
    ? `recovered earlier: etcd restored from ${seed} and verified; resuming with the after part`
    : `etcd runs on ${seed}, restored earlier; resuming with disarm, rejoin, verify`;
  ctx.continueWith = taskCommand("recover", ctx.opts, ["--yes"]);
  const from = next === "bootstrap"
    ? "bootstrap"
    : next === "await restore"
    ? "the restore"
    : "disarm";
  // the after part needs no copy: it takes a backup of the running etcd
  const file = next === "after" ? "" : await verifiedSeedCopy(ctx, seed);
  await confirm(
    ctx,
    next === "after"
      ? `continue the recovery with the after part (seed ${seed}): ${afterPrompt(ctx, true)}`
      : `continue the recovery from ${from} (seed ${seed}), then ${afterPrompt(ctx, true)}`,
    steps.plan,
  );
  ctx.opts.yes = true; // the one prompt covers the after part too
  if (next === "after") return await steps.after(seed);
  if (next === "bootstrap") return await steps.fromBootstrap(seed, file);
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
  await steps.fromDisarm(seed);
}

/**
 * A re-run after a wipe that did not finish (resets were accepted, then a node did not come
 * back in time, or the run was stopped): no pre-flight (a rebooting node does not answer it),
 * no new copies (the nodes are being wiped); the wipe is finished, then steps 4-8 follow.
 */
export async function resumeWipe(ctx: Ctx, progress: Progress, steps: RecoverSteps): Promise<void> {
  const found = unfinishedWipe(progress);
  const { seed, file } = await checkBeforeFinishing(ctx, progress, found);
  ctx.opts.seed = seed;
  ctx.log.step(`Resuming from ${ctx.opts.out}/journal.jsonl: ${found}`);
  ctx.continueWith = taskCommand("recover", ctx.opts, ["--yes"]);
  await confirm(
    ctx,
    `finish the wipe of ${ctx.opts.nodes.join(", ")} and restore etcd from ${seed} (${file}), ` +
      `then ${afterPrompt(ctx, true)}`,
    steps.plan,
  );
  ctx.opts.yes = true;
  await step(
    ctx,
    "wipe",
    `Finishing the wipe of ${ctx.opts.nodes.length} nodes`,
    () => finishWipe(ctx, progress),
  );
  await steps.fromBootstrap(seed, file);
}

/**
 * The plan of a resume: after the steps the journal records (none when it records no seed or
 * no step after the extraction: then the whole plan).
 */
export function resumedPlan(
  progress: Progress | undefined,
  header: string,
  parts: {
    restore: () => string[];
    fromDisarm: () => string[];
    fromWait: () => string[];
    wipe: () => string[];
    after: () => string[];
  },
  nodes: readonly string[] = [],
): string[] | undefined {
  if (progress?.seed && whereItStands(progress, { now: 0 }, nodes, true).next === "after") {
    return [
      header,
      `# resuming: ${
        describeProgress(progress, ["wipe", "bootstrap", "disarm", "verify"])
      }; the after part not finished (its steps done are not repeated)`,
      ...parts.after(),
    ];
  }
  if (progress?.seed && progress.bootstrapAccepted && !progress.done.has("bootstrap")) {
    return [
      header,
      `# resuming: ${describeJournal(progress)} (never sent again)`,
      ...parts.restore(),
      "",
      ...parts.fromDisarm(),
    ];
  }
  if (progress?.seed && progress.done.has("bootstrap")) {
    return [
      header,
      `# resuming: ${describeProgress(progress, ["wipe", "bootstrap", "disarm"])}`,
      ...parts.fromDisarm(),
    ];
  }
  if (progress?.seed && progress.done.has("wipe")) {
    return [header, `# resuming: ${describeProgress(progress, ["wipe"])}`, ...parts.fromWait()];
  }
  if (progress?.seed && progress.resetSent.size > 0) {
    return [
      header,
      `# resuming: reset sent to ${[...progress.resetSent.keys()].join(", ")}, wipe not finished`,
      "# (a node whose etcd still runs is reset again; the others are waited for)",
      ...parts.wipe().slice(1),
      "",
      ...parts.fromWait(),
    ];
  }
  return undefined;
}
