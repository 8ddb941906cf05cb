/**
 * Replace — bring back a bad member while a quorum of healthy members keeps etcd up.
 *
 * What:     diagnoses first (as `deno task diagnose`); goes on only on the verdict `replace`.
 *           For each bad node, one at a time: `etcd remove-member <hex id>` on the leader,
 *           `reset --system-labels-to-wipe EPHEMERAL --graceful=false --reboot --wait=false`
 *           of that node only, then waits until it runs again and the leader lists it as a
 *           voter (it rejoins as a learner by itself). Then disarms any alarm (an alarm
 *           survives the removal of its member) and diagnoses again: the verdict must be
 *           healthy.
 * Changes:  removes and resets only the bad members; never resets, reboots or bootstraps a
 *           healthy node. No write is lost: the majority holds them all.
 * Refuses:  any other verdict (exit 2), naming it, its reasons and the command to run instead.
 * Re-run:   a reset this OUT's journal saw accepted is not sent again: the node is waited for.
 * Raw:      talosctl -e 192.168.53.11 -n 192.168.53.11 etcd remove-member d2c3b4a596877869
 * Usage:    deno task replace --nodes A,B,C [--out DIR] [--yes] [--dry-run] [--timeout 10m]
 */

import type { Deps } from "../lib/run/deps.ts";
import { mainEntry, runTask, type TaskDef } from "../lib/recovery/main.ts";
import { decide } from "../lib/recovery/triage.ts";
import { gather } from "../lib/recovery/evidence.ts";
import { replaceProcedure } from "../lib/recovery/replace.ts";

export const task: TaskDef = {
  name: "replace",
  summary: "replace the bad members only, while a healthy quorum keeps etcd up",
  usage: "  deno task replace --nodes A,B,C [--out DIR] [--yes] [--dry-run] [--timeout 10m]",
  run: async (ctx) => {
    ctx.log.step(`Diagnosing etcd on ${ctx.opts.nodes.join(", ")} before replacing anything`);
    await replaceProcedure(ctx, decide(await gather(ctx)));
  },
};

export function main(args: string[], deps?: Deps): Promise<number> {
  return runTask(task, args, deps);
}

if (import.meta.main) await mainEntry(task);
