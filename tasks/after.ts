/**
 * After the restore — a verified backup, the workers' kubelets, the stuck workloads.
 *
 * What:     1. `etcd snapshot OUT/snapshot-<UTC time>.db` on a healthy member (--seed, else
 *           the journal's seed, else the first node whose etcd runs with HEALTH OK), read back
 *           with the built-in reader: intact, its sha256 trailer right, revision at least the
 *           restored copy's, no alarm inside; 0600; its sha256 in the manifest and the report;
 *           the command that restores from it printed.
 *           2. The workers (`kubectl get nodes -o wide`: rows without the control-plane role;
 *           else `talosctl get members` on a control-plane node) are shown, then each
 *           kubelet is restarted, one at a time, waited for until it runs (HEALTH OK) and its
 *           node is Ready again before the next (--timeout per node).
 *           3. Pods neither Running/Ready nor Succeeded (`kubectl get pods -A -o json`), with
 *           their last volume event (`get events -A -o json`), grouped by reason, and the
 *           command that restarts each.
 * Changes:  writes the backup into OUT; restarts the workers' kubelets (asks first, or --yes;
 *           --no-kubelet-restart skips it); with --restart-stuck deletes the stuck pods that
 *           a controller recreates, one at a time (asks first). Never touches a control-plane
 *           node's kubelet, never deletes a bare pod.
 * Refuses:  a backup file that exists already (never overwritten). A snapshot that fails its
 *           read-back is renamed `….rejected` and the run fails (exit 1).
 * Re-run:   a verified backup of this OUT is kept; a kubelet restarted (or a pod deleted) in
 *           this OUT is not restarted (deleted) again.
 * Raw:      talosctl -e 192.168.53.11 -n 192.168.53.11 etcd snapshot OUT/snapshot-….db
 *           talosctl -e 192.168.53.20 -n 192.168.53.20 service kubelet restart
 *           kubectl -n NS delete pod NAME
 * When:     `deno task recover` runs all of this at its end (lib/recovery/after.ts,
 *           afterRecover); this task runs it again on its own, e.g. when recover names it
 *           after the after part failed, or after steps run one by one.
 * Usage:    deno task after --nodes A,B,C [--seed S] [--out DIR] [--yes] [--dry-run]
 *             [--no-kubelet-restart] [--restart-stuck] [--json] [--timeout 10m]
 */

import type { Deps } from "../lib/run/deps.ts";
import { mainEntry, runTask, type TaskDef } from "../lib/recovery/main.ts";
import { printPlan } from "../lib/recovery/confirm.ts";
import { after, afterPlan, afterSummary } from "../lib/recovery/after.ts";

export { after };

export const task: TaskDef = {
  name: "after",
  summary: "after the restore: a verified backup, the workers' kubelets restarted, stuck pods",
  usage: "  deno task after --nodes A,B,C [--seed S] [--out DIR] [--yes] [--dry-run]\n" +
    "    [--no-kubelet-restart] [--restart-stuck] [--json] [--timeout 10m]",
  run: async (ctx) => {
    if (ctx.opts.dryRun) return printPlan(ctx, afterPlan(ctx));
    const r = await after(ctx);
    ctx.clusterState = `restored; ${afterSummary(r)}`;
    ctx.continueWith = undefined;
  },
};

export function main(args: string[], deps?: Deps): Promise<number> {
  return runTask(task, args, deps);
}

if (import.meta.main) await mainEntry(task);
