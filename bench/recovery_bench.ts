/**
 * The lab's time to recovery against the least time its own delays allow. A simulated control
 * plane (`lib/sim`) is brought up, loaded and broken as in `deno task demo`, then `deno task
 * recover` runs against it as the operator would (a process, `--yes`). Every delay of the lab is
 * a real cluster's (`TIMELINE` in lib/sim/state.ts) divided by the lab's speed, so the ratio is
 * the one a real cluster of those proportions would see. Prints figures; not a test.
 *
 * The lower bound is what no procedure can avoid: the reset reboot until etcd waits for a join
 * or a restore (`resetDownS` + `criUpS`), the restore (`restoreS`), then each other node joined
 * as a learner, one at a time, until etcd promotes it (`promoteFirstS` each). It covers etcd
 * coming back, so recover is timed until its verify step passed (from its journal); the after
 * part it runs next (backup, the workers' kubelets, stuck pods) is printed apart.
 */

import { existsSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import * as lab from "../lib/sim/lab.ts";
import { REPO_ROOT } from "../lib/sim/paths.ts";
import { TIMELINE } from "../lib/sim/state.ts";

export interface LabFigures {
  /** From the start of recover until its verify step passed (what the bound covers). */
  recoverMs: number;
  /** The whole recover process, the after part included. */
  totalMs: number;
  boundMs: number;
  code: number;
  reboots: number;
}

/** The least time a recovery of `nodes` nodes takes on a lab at `speed`, in ms. */
export function lowerBoundMs(nodes: number, speed: number): number {
  const t = TIMELINE;
  const seconds = t.resetDownS + t.criUpS + t.restoreS + (nodes - 1) * t.promoteFirstS;
  return (seconds * 1000) / speed;
}

/** Runs the whole recovery on a fresh lab in `dir` and prints the figures. */
export async function benchRecovery(
  dirArg: string,
  o: { nodes: number; speed: number; backend: "auto" | "etcd" | "model" },
): Promise<LabFigures> {
  const dir = resolve(dirArg);
  const out = join(dir, "out");
  const say = (line: string) => console.error(`==> ${line}`);
  try {
    const s = await lab.up(dir, { nodes: o.nodes, backend: o.backend, speed: o.speed, log: say });
    await lab.load(dir);
    await lab.breakCluster(dir);
    rmSync(out, { recursive: true, force: true });
    const argv = [
      "task",
      "recover",
      "--nodes",
      s.nodes.map((n) => n.label).join(","),
      "--vip",
      s.vip,
      "--yes",
      "--out",
      out,
      "--timeout",
      "3m",
    ];
    say(`timing: deno ${argv.join(" ")} (lab: ${s.backend} backend, speed ${s.speed}x)`);
    const started = performance.now();
    const child = await new Deno.Command(Deno.execPath(), {
      args: argv,
      cwd: REPO_ROOT,
      env: { ...lab.labEnv(s), NO_COLOR: "1" },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    const recoverMs = performance.now() - started;
    const calls = join(dir, "calls.log");
    const reboots = existsSync(calls)
      ? readFileSync(calls, "utf8").split("\n").filter(Boolean)
        .filter((l) => (JSON.parse(l).argv as string[]).includes("reboot")).length
      : NaN;
    if (child.code !== 0) {
      console.error(new TextDecoder().decode(child.stderr).split("\n").slice(-15).join("\n"));
    }
    const boundMs = lowerBoundMs(o.nodes, s.speed);
    const t = TIMELINE;
    // etcd is back when verify passed; recover then runs the after part (backup, kubelets,
    // stuck pods), which the lower bound does not cover: timed apart, from the journal
    const journal = join(out, "journal.jsonl");
    const entries = existsSync(journal)
      ? readFileSync(journal, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l))
      : [];
    const runAt = Date.parse(entries.find((e) => e.type === "run")?.ts ?? "");
    const verifiedAt = Date.parse(
      entries.findLast((e) => e.type === "step" && e.step === "verify" && e.event === "ok")?.ts ??
        "",
    );
    const etcdMs = verifiedAt - runAt;
    console.log(
      `\nlab time to recovery (${o.nodes} nodes, ${s.backend} backend, delays of a real ` +
        `cluster / ${s.speed}):`,
    );
    console.log(
      `recover: ${(recoverMs / 1000).toFixed(1)} s in all (exit ${child.code}, ${reboots} ` +
        `reboots); etcd back and verified after ${(etcdMs / 1000).toFixed(1)} s, then the after ` +
        `part (backup, kubelets, stuck pods) ${((recoverMs - etcdMs) / 1000).toFixed(1)} s`,
    );
    console.log(
      `lower bound: ${(boundMs / 1000).toFixed(1)} s = (reset ${t.resetDownS} s + boot to ` +
        `Preparing ${t.criUpS} s + restore ${t.restoreS} s + ${o.nodes - 1} joins × promotion ` +
        `${t.promoteFirstS} s) / ${s.speed}`,
    );
    console.log(
      `recover until etcd is verified / lower bound: ${(etcdMs / boundMs).toFixed(2)}x (at a ` +
        `real cluster's scale: ${(etcdMs * s.speed / 60_000).toFixed(1)} min against ` +
        `${(boundMs * s.speed / 60_000).toFixed(1)} min)`,
    );
    return { recoverMs: etcdMs, totalMs: recoverMs, boundMs, code: child.code, reboots };
  } finally {
    const n = await lab.down(dir).catch(() => 0);
    say(`lab down: ${n} processes stopped by PID`);
  }
}
