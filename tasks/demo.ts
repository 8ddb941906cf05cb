/**
 * demo — the whole incident and its recovery, rehearsed on the lab, end to end.
 *
 * What it does: `lab up` → `lab load` → `lab break` (one member stopped early, more writes,
 * CORRUPT alarm), then runs the real `deno task recover --nodes … --vip … --yes --out DIR`
 * as a subprocess with TALOSCTL pointing at the lab's fake talosctl, then proves the result:
 * every key written before the break reads back with its value, the restored revision equals
 * the seed copy's, writes work, every member votes, no alarm, the VIP is held. Prints the
 * recovery report (DIR/report.md). Always ends with `lab down` (also on failure or Ctrl-C).
 * Changes nothing outside the lab directory; contacts nothing beyond 127.0.0.1.
 *
 * Usage: deno task demo [--nodes 3|5] [--dir .lab] [--backend auto|etcd|model] [--speed N]
 *                       [--keep]   (leave the lab up at the end)
 * Exit: 0 recovered and proven, 1 recovery or proof failed, 2 bad usage, 130 interrupted.
 */

import { existsSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { backendOf } from "../lib/sim/backend_model.ts";
import * as lab from "../lib/sim/lab.ts";
import { REPO_ROOT } from "../lib/sim/paths.ts";
import { type Backend, loadState } from "../lib/sim/state.ts";

/** Deadline of each wait inside recover (its --timeout). */
const RECOVER_WAIT_TIMEOUT = "3m";
/**
 * Default lab speed (real-cluster delays divided by this). Real etcd members need real
 * seconds to start and join, so 20x is as fast as that goes; the model has no such limit.
 */
const SPEED = { etcd: 20, model: 1000 } as const;

export async function main(args: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      options: {
        nodes: { type: "string" },
        dir: { type: "string" },
        backend: { type: "string" },
        speed: { type: "string" },
        keep: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    console.error(String(error instanceof Error ? error.message : error));
    return 2;
  }
  if (values.help) {
    console.log(
      "Usage: deno task demo [--nodes 3|5] [--dir .lab] [--backend auto|etcd|model] " +
        "[--speed N] [--keep]",
    );
    return 0;
  }
  const dir = resolve(String(values.dir ?? ".lab"));
  const out = join(dir, "out");
  const nodes = Number(values.nodes ?? 3);
  const wanted = String(values.backend ?? "auto");
  if (!["auto", "etcd", "model"].includes(wanted)) {
    console.error(`--backend must be auto, etcd or model, not "${wanted}"`);
    return 2;
  }
  const backend: Backend = wanted === "auto"
    ? (lab.etcdInstalled() ? "etcd" : "model")
    : wanted as Backend;
  const speed = Number(values.speed ?? (Deno.env.get("TALOS_SIM_SPEED") || SPEED[backend]));
  if (!(speed > 0) || !(nodes >= 1)) {
    console.error("--speed and --nodes must be positive numbers");
    return 2;
  }
  const t0 = performance.now();
  const at = () => `[${((performance.now() - t0) / 1000).toFixed(1)}s]`;
  const say = (line: string) => console.error(`==> ${at()} ${line}`);

  let child: Deno.ChildProcess | undefined;
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    say("interrupted: stopping the recovery and the lab");
    try {
      child?.kill("SIGINT");
    } catch {
      // already gone
    }
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    const s = await lab.up(dir, { nodes, backend, speed, log: (l) => say(l) });
    say(`lab up: ${s.nodes.length} nodes (${s.backend} backend, speed ${s.speed}x), VIP ${s.vip}`);
    const rev = await lab.load(dir);
    say(`loaded: revision ${rev}`);
    const b = await lab.breakCluster(dir);
    say(`broken: ${b.stopped} stopped early, CORRUPT alarm, revision ${b.revision}; VIP gone`);
    if (interrupted) return 130;

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
      RECOVER_WAIT_TIMEOUT,
    ];
    const env: Record<string, string> = { ...lab.labEnv(s), DENO: Deno.execPath(), NO_COLOR: "1" };
    say(`running: TALOSCTL=${env.TALOSCTL} deno ${argv.join(" ")}`);
    const started = performance.now();
    child = new Deno.Command(Deno.execPath(), {
      args: argv,
      cwd: REPO_ROOT,
      env,
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    const { code } = await child.status;
    child = undefined;
    const recoverS = ((performance.now() - started) / 1000).toFixed(1);
    if (interrupted) return 130;
    say(`recover exited ${code} after ${recoverS}s`);

    const seed = loadState(dir).seed;
    const seedCopy = seed ? join(out, `db.${seed}`, "db") : undefined;
    let seedRevision: number | undefined;
    if (seedCopy && existsSync(seedCopy)) {
      const st = await (await backendOf(loadState(dir))).snapshotStatus(seedCopy);
      if (!("error" in st)) seedRevision = st.revision;
    }
    const checks = await lab.prove(dir, seedRevision);
    console.error(`\n==> proof (seed ${seed ?? "none"}):`);
    for (const c of checks) console.error(`  ${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}`);
    const report = join(out, "report.md");
    if (existsSync(report)) {
      console.error(`\n==> ${report}:\n`);
      console.log(readFileSync(report, "utf8"));
    } else console.error(`\n==> no report at ${report}`);
    const proven = checks.every((c) => c.ok);
    say(
      `${code === 0 && proven ? "recovered and proven" : "FAILED"}: recover ${recoverS}s, ` +
        `total ${((performance.now() - t0) / 1000).toFixed(1)}s`,
    );
    return code === 0 && proven ? 0 : 1;
  } catch (error) {
    say(`demo failed: ${error instanceof Error ? error.message : error}`);
    return interrupted ? 130 : error instanceof lab.LabError ? 2 : 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    if (values.keep && !interrupted) {
      say(`lab left up in ${dir} ("deno task lab down --dir ${values.dir ?? ".lab"}" stops it)`);
    } else {
      const n = await lab.down(dir);
      say(`lab down: ${n} processes stopped by PID`);
    }
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
