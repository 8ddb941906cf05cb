/**
 * demo — an incident and its way back, rehearsed on the lab, end to end.
 *
 * What it does: `lab up` → `lab load` → `lab break --mode MODE`, then the real `deno task
 * diagnose --json` (its verdict must be the one the mode calls for), then the procedure that
 * verdict names, run as a subprocess with TALOSCTL pointing at the lab's fake talosctl, then
 * the proof. Always ends with `lab down` (also on failure or Ctrl-C).
 *
 * | mode                  | diagnose | procedure                                   | proof                                |
 * | --------------------- | -------- | ------------------------------------------- | ------------------------------------ |
 * | incident (default)    | rebuild  | `deno task recover --yes` (full rebuild)    | keys, revision = seed copy's, votes  |
 * | quorum-lost           | rebuild  | `deno task recover --yes`                   | same                                 |
 * | bad-member            | replace  | `deno task replace --yes`, writes meanwhile | keys (and those written meanwhile) on every member, healthy members' etcd PIDs unchanged, votes |
 * | nospace               | nospace  | `etcd defrag` per member (leader last), `etcd alarm disarm` (what diagnose prints; no task yet) | keys, writes work, no member restarted, no alarm |
 *
 * A proof the model backend cannot make (it keeps no keys) is shown as `not checked`.
 * Changes nothing outside the lab directory; contacts nothing beyond 127.0.0.1.
 *
 * Usage: deno task demo [--mode incident|bad-member|nospace|quorum-lost] [--nodes 3|5]
 *                       [--dir .lab] [--backend auto|etcd|model] [--speed N]
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
import { run as talosctl } from "../lib/sim/talosctl.ts";

/** Deadline of each wait inside recover and replace (their --timeout). */
const WAIT_TIMEOUT = "3m";
/**
 * Default lab speed (real-cluster delays divided by this). Real etcd members need real
 * seconds to start and join, so 20x is as fast as that goes; the model has no such limit.
 */
const SPEED = { etcd: 20, model: 1000 } as const;
/** The verdict `diagnose` must reach after each break. */
const EXPECTED: Record<lab.BreakMode, string> = {
  incident: "rebuild",
  "quorum-lost": "rebuild",
  "bad-member": "replace",
  nospace: "nospace",
};
const USAGE = "Usage: deno task demo [--mode incident|bad-member|nospace|quorum-lost] " +
  "[--nodes 3|5] [--dir .lab] [--backend auto|etcd|model] [--speed N] [--keep]";

export async function main(args: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      options: {
        mode: { type: "string" },
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
    console.log(USAGE);
    return 0;
  }
  const mode = String(values.mode ?? "incident") as lab.BreakMode;
  if (!lab.BREAK_MODES.includes(mode)) {
    console.error(`--mode must be one of ${lab.BREAK_MODES.join(", ")}, not "${mode}"`);
    return 2;
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
  /** `deno task …` against the lab; stdout captured (`capture`) or shown. */
  const task = async (argv: string[], capture = false) => {
    const s = loadState(dir);
    const env: Record<string, string> = { ...lab.labEnv(s), DENO: Deno.execPath(), NO_COLOR: "1" };
    say(`running: TALOSCTL=${env.TALOSCTL} deno task ${argv.join(" ")}`);
    child = new Deno.Command(Deno.execPath(), {
      args: ["task", ...argv],
      cwd: REPO_ROOT,
      env,
      stdin: "null",
      stdout: capture ? "piped" : "inherit",
      stderr: "inherit",
    }).spawn();
    const o = await child.output();
    child = undefined;
    return { code: o.code, stdout: capture ? new TextDecoder().decode(o.stdout) : "" };
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    const s = await lab.up(dir, { nodes, backend, speed, log: (l) => say(l) });
    say(`lab up: ${s.nodes.length} nodes (${s.backend} backend, speed ${s.speed}x), VIP ${s.vip}`);
    const rev = await lab.load(dir);
    say(`loaded: revision ${rev}`);
    const b = await lab.breakCluster(dir, lab.DEFAULT_LATE_KEYS, mode);
    say(`broken (${mode}): ${lab.brokenText(b)}`);
    if (interrupted) return 130;
    const nodeList = s.nodes.map((n) => n.label).join(",");

    rmSync(out, { recursive: true, force: true });
    const diag = await task(
      ["diagnose", "--nodes", nodeList, "--out", join(dir, "out-diagnose"), "--json"],
      true,
    );
    let verdict = `none (diagnose exited ${diag.code})`;
    let leader: string | undefined;
    let nodesSeen: { node: string; memberId?: string }[] = [];
    try {
      const j = JSON.parse(diag.stdout);
      verdict = j.verdict;
      leader = j.leader ?? undefined;
      nodesSeen = j.nodes ?? [];
    } catch {
      // verdict stays "none"
    }
    const diagnosed: lab.Check = {
      name: `diagnose says ${EXPECTED[mode]}`,
      ok: verdict === EXPECTED[mode],
      detail: `verdict ${verdict}`,
    };
    say(`diagnose: ${verdict} (expected ${EXPECTED[mode]})`);
    if (interrupted) return 130;

    const started = performance.now();
    let code: number;
    let checks: lab.Check[];
    if (mode === "bad-member") {
      const pidsBefore = await lab.memberPids(dir);
      const writer = lab.startWriter(dir, Object.keys(pidsBefore));
      code = (await task([
        "replace",
        "--nodes",
        nodeList,
        "--yes",
        "--out",
        out,
        "--timeout",
        WAIT_TIMEOUT,
      ])).code;
      const during = await writer.stop();
      say(`replace exited ${code}; ${during.size} keys written meanwhile`);
      checks = await lab.proveInPlace(dir, { pidsBefore, replaced: [b.stopped], during });
    } else if (mode === "nospace") {
      const pidsBefore = await lab.memberPids(dir);
      code = await fixNospace(dir, s.nodes.map((n) => n.label), leader, nodesSeen, say);
      checks = await lab.proveInPlace(dir, { pidsBefore, replaced: [], during: new Map() });
    } else {
      code = (await task([
        "recover",
        "--nodes",
        nodeList,
        "--vip",
        s.vip,
        "--yes",
        "--out",
        out,
        "--timeout",
        WAIT_TIMEOUT,
      ])).code;
      const seed = loadState(dir).seed;
      const seedCopy = seed ? join(out, `db.${seed}`, "db") : undefined;
      let seedRevision: number | undefined;
      if (seedCopy && existsSync(seedCopy)) {
        const st = await (await backendOf(loadState(dir))).snapshotStatus(seedCopy);
        if (!("error" in st)) seedRevision = st.revision;
      }
      checks = await lab.prove(dir, seedRevision);
    }
    const procS = ((performance.now() - started) / 1000).toFixed(1);
    if (interrupted) return 130;
    say(`the way back exited ${code} after ${procS}s`);
    checks = [diagnosed, ...checks];
    console.error(`\n==> proof (${mode}):`);
    for (const c of checks) console.error(`  ${lab.checkMark(c)} ${c.name}: ${c.detail}`);
    const report = join(out, "report.md");
    if (existsSync(report)) {
      console.error(`\n==> ${report}:\n`);
      console.log(readFileSync(report, "utf8"));
    }
    const failed = checks.filter((c) => !c.ok && !c.notChecked).length;
    const unchecked = checks.filter((c) => c.notChecked).length;
    const proven = code === 0 && failed === 0;
    say(
      `${proven ? "recovered and proven" : "FAILED"}` +
        (unchecked > 0 ? ` (${unchecked} check(s) not checked on the ${backend} backend)` : "") +
        `: procedure ${procS}s, total ${((performance.now() - t0) / 1000).toFixed(1)}s`,
    );
    return proven ? 0 : 1;
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

/**
 * The nospace procedure as diagnose prints it (there is no task for it yet): `etcd defrag` on
 * each member, one at a time, the leader last; then `etcd alarm disarm` on the leader.
 */
async function fixNospace(
  dir: string,
  nodes: string[],
  leaderId: string | undefined,
  seen: { node: string; memberId?: string }[],
  say: (line: string) => void,
): Promise<number> {
  const leader = seen.find((n) => leaderId && n.memberId === leaderId)?.node ?? nodes[0];
  const bin = join(dir, "bin", "talosctl");
  const steps = [
    ...[...nodes.filter((n) => n !== leader), leader].map((n) => [n, "etcd", "defrag"]),
    [leader, "etcd", "alarm", "disarm"],
  ];
  for (const [node, ...args] of steps) {
    say(`+ ${bin} -e ${node} -n ${node} ${args.join(" ")}`);
    const r = await talosctl(["-e", node, "-n", node, ...args], dir);
    if (r.stdout) console.error(r.stdout.trimEnd());
    if (r.code !== 0) {
      console.error(r.stderr.trimEnd());
      return 1;
    }
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
