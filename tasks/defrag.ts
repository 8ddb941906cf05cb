/**
 * Defrag — bring back a cluster whose db hit its quota (NOSPACE), touching no node.
 *
 * What:     diagnoses first (as `deno task diagnose`); goes on only on the verdict `nospace`.
 *           `etcd defrag` on each member, one at a time, the leader last, each until its etcd
 *           is healthy again; then `etcd alarm disarm` (the list must then be empty); then DB
 *           SIZE against IN USE and the quota; then diagnoses again: the verdict must be
 *           healthy.
 * Changes:  rewrites each member's db file in place (defrag); clears the alarms. No reset, no
 *           reboot, no write lost.
 * Refuses:  any other verdict (exit 2), naming it, its reasons and the command to run instead.
 * Re-run:   members this OUT's journal records as defragmented are not defragmented again.
 * Raw:      talosctl -e 192.168.53.10 -n 192.168.53.10 etcd defrag
 * Usage:    deno task defrag --nodes A,B,C [--out DIR] [--yes] [--dry-run] [--timeout 10m]
 */

import type { Deps } from "../lib/run/deps.ts";
import { mainEntry, runTask, type TaskDef } from "../lib/recovery/main.ts";
import { decide } from "../lib/recovery/triage.ts";
import { gather } from "../lib/recovery/evidence.ts";
import { defragProcedure } from "../lib/recovery/defrag.ts";

export const task: TaskDef = {
  name: "defrag",
  summary: "NOSPACE: defragment each member (the leader last), then disarm; no node is reset",
  usage: "  deno task defrag --nodes A,B,C [--out DIR] [--yes] [--dry-run] [--timeout 10m]",
  run: async (ctx) => {
    ctx.log.step(`Diagnosing etcd on ${ctx.opts.nodes.join(", ")} before defragmenting`);
    await defragProcedure(ctx, decide(await gather(ctx)));
  },
};

export function main(args: string[], deps?: Deps): Promise<number> {
  return runTask(task, args, deps);
}

if (import.meta.main) await mainEntry(task);
