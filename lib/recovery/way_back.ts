/**
 * recover's choice of a way back: the triage on what it has looked at already (pre-flight's
 * looks, the copies, the cluster's answers), then the procedure for the verdict, or a
 * refusal naming what to do instead. The full rebuild itself is the runbook in tasks/.
 */

import type { Ctx } from "../run/context.ts";
import { RefusedError } from "../run/errors.ts";
import { askCluster } from "../talos/cluster.ts";
import type { NodeLooks } from "../talos/preflight.ts";
import { defragProcedure } from "./defrag.ts";
import { triageInput } from "./evidence.ts";
import { inspectCopies, statusTable } from "./inspect.ts";
import { taskCommand } from "./main.ts";
import { alarmOnly, replaceProcedure } from "./replace.ts";
import { AFTER_STEP, afterRecover } from "./after.ts";
import { Journal } from "../run/journal.ts";
import { decide, type Decision } from "./triage.ts";

/**
 * Looks at the copies and the cluster once (the safety check reuses both) and decides which
 * procedure to run: the full rebuild only when nothing smaller works, or with --full.
 */
export async function triage(ctx: Ctx, looks: NodeLooks) {
  const insp = await inspectCopies(ctx);
  ctx.log.raw(statusTable(insp, ctx.opts.seed));
  const first = ctx.opts.seed ?? insp.choice?.seed ?? ctx.opts.nodes[0];
  const view = await askCluster(ctx, first, "safety");
  const decision = decide(triageInput(ctx.opts.nodes, looks, insp, view));
  ctx.log.info(`verdict: ${decision.verdict}`);
  for (const r of decision.reasons) ctx.log.info(`- ${r}`);
  return { decision, looked: { insp, view }, procedure: procedureFor(ctx, decision) };
}

/** A way back, or `after`: the after part of a replace or defrag this OUT did earlier. */
export type Procedure = Decision["verdict"] | "after";

/**
 * What a replace or defrag that this OUT's journal records as done left unfinished: its after
 * part (no `after` step done since), named as the messages say it; undefined when none.
 */
export function unfinishedInPlace(out: string): string | undefined {
  let how: string | undefined;
  for (const e of Journal.readAll(out)) {
    if (e.type !== "step" || e.event !== "ok") continue;
    if (e.step.startsWith("replace:")) how = IN_PLACE.replace;
    if (e.step.startsWith("defrag:")) how = IN_PLACE.nospace;
    if (e.step === AFTER_STEP) how = undefined;
  }
  return how;
}

/** The procedures that change etcd in place, as the after part names them. */
const IN_PLACE = { replace: "replacing the bad members", nospace: "the defragmentation" };

/** The procedure for a verdict, or a refusal (exit 2) naming what to do instead. */
function procedureFor(ctx: Ctx, d: Decision): Procedure {
  const why = d.reasons.join("; ");
  if (d.verdict === "rebuild") return "rebuild";
  if (d.verdict === "healthy" && !ctx.opts.full && !ctx.opts.force) {
    const how = unfinishedInPlace(ctx.opts.out);
    if (how) {
      ctx.log.info(`${ctx.opts.out}/journal.jsonl records ${how}, its after part not finished`);
      return "after";
    }
  }
  if (ctx.opts.full || (ctx.opts.force && d.verdict === "healthy")) {
    ctx.log.warn(
      `the full rebuild because of ${
        ctx.opts.full ? "--full" : "--force"
      }, though the verdict is ${d.verdict}`,
    );
    return "rebuild";
  }
  if (d.verdict === "healthy") {
    throw new RefusedError(`Refusing to wipe a healthy cluster: ${why}`, {
      hint: "nothing to recover; pass --full (or --force) only if you know etcd is broken anyway",
    });
  }
  if (d.verdict === "unknown") {
    throw new RefusedError(`Not enough evidence to choose a way back: ${why}`, {
      hint: "fix what is missing and run again; --full rebuilds from the copies (every write " +
        "after them is lost)",
    });
  }
  if (ctx.opts.seed) {
    throw new RefusedError(
      `--seed ${ctx.opts.seed} asks for the full rebuild, but a smaller way back exists: ` +
        `${d.verdict} (${why})`,
      { hint: `run it again without --seed to take it (${SMALLER[d.verdict]}), or add --full` },
    );
  }
  return d.verdict;
}

/** What each smaller procedure does, for messages. */
const SMALLER: Record<string, string> = {
  "replace": "replace only the bad members; no write is lost",
  "nospace": "defragment each member and disarm; no node is reset",
  "alarm-only": "disarm the alarm; nothing is reset",
};

/**
 * Runs replace, defrag or the disarm, as their tasks do, after one confirmation naming it;
 * then, after replace or defrag (they changed etcd), the after part without the kubelet
 * restarts (no write was lost): a verified backup and the stuck pods. Nothing after the disarm.
 */
export async function smallerWayBack(ctx: Ctx, d: Decision, p: Procedure): Promise<void> {
  ctx.continueWith = taskCommand("recover", ctx.opts, ["--yes"]);
  if (p === "after") {
    // a re-run: the replace or defrag is done, the cluster healthy; only its after part is left
    const how = unfinishedInPlace(ctx.opts.out)!;
    await afterRecover(ctx, `recovered earlier by ${how}: healthy now`, { inPlace: how });
    return;
  }
  if (d.verdict === "replace") await replaceProcedure(ctx, d);
  else if (d.verdict === "nospace") await defragProcedure(ctx, d);
  else await alarmOnly(ctx, d);
  if (d.verdict === "alarm-only") {
    ctx.continueWith = undefined;
    return;
  }
  const how = d.verdict === "replace" ? IN_PLACE.replace : IN_PLACE.nospace;
  await afterRecover(ctx, `recovered by ${how}: ${ctx.clusterState}`, { inPlace: how });
}
