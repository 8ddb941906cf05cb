/**
 * Step 2 — status: what each copy holds, and which node is the seed.
 *
 * What:     checks each copy's sha256 against OUT/manifest.json, reads it with the native
 *           reader (revision, keys, size, hash, alarms stored inside, integrity), and, when
 *           etcdutl (or etcdctl 3.4 with ETCDCTL_API=3) is installed, reads it with that too
 *           and reports any disagreement loudly. Compares the copies' key history, compaction
 *           handled (etcd's HashKV after compacting to the highest compaction, up to the lowest
 *           revision), names the majority, the copies outside it and any copy not compared (with
 *           why). The seed is the highest revision (hashes of copies taken at the same moment
 *           differ between members), unless that copy disagrees with the majority: then wipe
 *           and recover refuse it without --force, as they refuse copies not compared.
 * Changes:  nothing.
 * Output:   a table on stderr for people; the seed's address alone on stdout (or --json), so
 *           `SEED=$(deno task status …)` works. While a copy is unusable: no seed, exit 2
 *           (it might hold the newest data); --force names the best readable copy.
 * Raw:      etcdutl snapshot status ./etcd-recovery/db.192.168.53.10/db -w json
 * Usage:    deno task status [--nodes A,B,C] [--out DIR] [--seed N] [--json] [--force]
 */
import { join } from "node:path";
import { type Ctx, step } from "../lib/run/context.ts";
import type { Deps } from "../lib/run/deps.ts";
import { StepError } from "../lib/run/errors.ts";
import { inspectCopies, statusTable } from "../lib/recovery/inspect.ts";
import { mainEntry, runTask, type TaskDef } from "../lib/recovery/main.ts";
import { printPlan } from "../lib/recovery/confirm.ts";
import { shellLine } from "../lib/run/command.ts";
import { copyFile } from "../lib/recovery/manifest.ts";
import { adviseUnusable, statusJson, withheldSeed } from "../lib/recovery/status_report.ts";

export const task: TaskDef = {
  name: "status",
  summary: "read every copy in OUT and name the seed (highest revision); changes nothing",
  usage: "  deno task status [--nodes A,B,C] [--out DIR] [--json] [--force]",
  parse: { nodesOptional: true, rehash: true, etcdHash: true },
  run: async (ctx) => {
    if (ctx.opts.dryRun) return printPlan(ctx, statusPlan(ctx));
    const insp = await step(
      ctx,
      "status",
      `Reading the copies in ${ctx.opts.out}`,
      () => inspectCopies(ctx, { requireManifest: false, trustUnchanged: true }),
    );
    const withheld = withheldSeed(ctx, insp);
    ctx.log.raw(statusTable(insp, withheld ? null : insp.choice?.seed));
    if (ctx.opts.json) {
      ctx.deps.stdout(JSON.stringify(statusJson(insp, withheld), null, 2) + "\n");
    }
    adviseUnusable(ctx, insp);
    if (!insp.choice) {
      throw new StepError("No copy could be read: there is no seed", {
        hint: "see the problems above; extract again into a new --out",
      });
    }
    if (withheld) throw withheld;
    const { seed, revision } = insp.choice;
    ctx.log.ok(`seed: ${seed} (revision ${revision})`);
    const pick = insp.comparison.highestDisagrees && insp.comparison.majorityPick;
    if (pick && pick.node !== seed) {
      ctx.log.warn(
        `wipe and recover refuse seed ${seed} without --force (it disagrees with the majority): ` +
          `use --seed ${pick.node} (revision ${pick.revision})`,
      );
    }
    if (ctx.opts.seed && ctx.opts.seed !== seed) {
      const mine = insp.rows.find((r) => r.node === ctx.opts.seed)?.status?.revision;
      ctx.log.warn(
        `--seed ${ctx.opts.seed} has revision ${mine ?? "unknown"}; "${seed}" has ${revision}`,
      );
    }
    if (!ctx.opts.json) ctx.deps.stdout(`${seed}\n`);
  },
};
/** The commands status runs, as bash. */
export function statusPlan(ctx: Ctx): string[] {
  return [
    "# Step 2: read every copy; the seed is the highest revision",
    "# (deno task status reads them itself; etcdutl, when installed, is a cross-check)",
    "if command -v etcdutl >/dev/null 2>&1; then",
    ...ctx.opts.nodes.map((n) =>
      `  etcdutl snapshot status ${shellLine([join(ctx.opts.out, copyFile(n))])} -w json`
    ),
    "fi",
  ];
}

export function main(args: string[], deps?: Deps): Promise<number> {
  return runTask(task, args, deps);
}

if (import.meta.main) await mainEntry(task);
