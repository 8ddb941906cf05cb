/**
 * Destructive steps ask first. With `--yes` they go on; on a terminal they ask `[y/N]`,
 * naming the nodes; with no terminal they print the plan and stop, exit 0, having changed
 * nothing (kops-style preview).
 */

import type { Ctx } from "../run/context.ts";
import { planScript } from "../talos/plan.ts";
import { talosBase } from "../talos/talosctl.ts";
import { DeclinedError, InterruptedError, RecoveryError } from "../run/errors.ts";

/** Not a failure: the plan was printed instead of running (exit 0). */
export class PlanPrinted extends RecoveryError {
  override exitCode = 0;
}

/** Prints `lines` as a bash script on stdout, the helpers they call at its top. */
export function printPlan(ctx: Ctx, lines: string[]): void {
  ctx.deps.stdout(planScript(talosBase(ctx), lines));
}

/**
 * Asks before `action` (e.g. `wipe 192.168.53.10, 192.168.53.11`). Returns when the operator
 * agreed (or passed --yes); throws `DeclinedError` on no, `PlanPrinted` without a terminal.
 */
export async function confirm(ctx: Ctx, action: string, plan: () => string[]): Promise<void> {
  if (ctx.opts.yes) return;
  if (!ctx.deps.isTerminal) {
    printPlan(ctx, plan());
    throw new PlanPrinted(
      `No terminal (stdin or stderr is not one: piped or redirected?) and no --yes: printed the plan for "${action}" and changed nothing`,
      { hint: "review it, then run again with --yes" },
    );
  }
  // Ctrl-C at the prompt ends the run at once: the answer is not waited for
  const interrupted = new Promise<never>((_, reject) => {
    const stop = () => reject(new InterruptedError(`Interrupted at the prompt: did not ${action}`));
    if (ctx.deps.signal.aborted) stop();
    else ctx.deps.signal.addEventListener("abort", stop, { once: true });
  });
  const answer = await Promise.race([
    ctx.deps.ask(`About to ${action}. Continue? [y/N] `),
    interrupted,
  ]);
  if (ctx.deps.signal.aborted) {
    throw new InterruptedError(`Interrupted at the prompt: did not ${action}`);
  }
  if (!/^(y|yes)$/i.test((answer ?? "").trim())) {
    throw new DeclinedError(`Declined: did not ${action}`);
  }
}
