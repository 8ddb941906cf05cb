/**
 * lab — a simulated Talos control plane to rehearse the recovery on (never a real cluster).
 *
 * What it does: starts N control-plane "nodes" (labels 127.0.53.10, .11, …; VIP 127.0.53.2),
 * each backed by a real etcd member on 127.0.0.1 when `etcd`/`etcdctl` are installed (else a
 * model with real db files from fixtures/sim/), and a fake talosctl (`DIR/bin/talosctl`)
 * that answers exactly like talosctl v1.13. Nothing listens or connects beyond 127.0.0.1.
 *
 * Usage:
 *   deno task lab up [--nodes 3|5] [--dir .lab] [--backend auto|etcd|model] [--speed 20]
 *   deno task lab load [--keys 2000]     write keys (JSON gateway, keep-alive)
 *   deno task lab break [--mode M]       the incident (default): one member stops early, more
 *                                        writes, CORRUPT alarm; --mode bad-member | nospace |
 *                                        quorum-lost: the other ways etcd breaks (README)
 *   deno task lab status                 nodes, etcd states, health, PIDs, VIP, alarms
 *   deno task lab fault NODE KIND        off | on | short-copy | torn-copy | stuck-reset |
 *                                        join-gave-up | clear
 *   deno task lab down                   stop every process by PID, remove member data
 *
 * `up` prints the `TALOSCTL=… deno task <step> …` lines to rehearse each step by hand.
 * Speed: delays are a real cluster's divided by --speed (or env TALOS_SIM_SPEED; default 20).
 */

import { parseArgs } from "node:util";
import * as lab from "../lib/sim/lab.ts";
import type { Backend } from "../lib/sim/state.ts";

const USAGE = `Usage: deno task lab <up|load|break|status|fault|down> [flags]
  up      [--nodes 3|5] [--backend auto|etcd|model] [--speed N]  start the lab
  load    [--keys N]        write N keys (default ${lab.DEFAULT_KEYS})
  break [--mode MODE]       MODE: ${lab.BREAK_MODES.join(" | ")} (default incident)
                              incident: one member stops early, more writes, CORRUPT alarm
                              bad-member: a value of the last member's db damaged on disk:
                                its etcd refuses to start (data inconsistency with peers)
                              nospace: the second member's quota is small, filled: NOSPACE
                              quorum-lost: every member but the last stops: no leader
  status                    show nodes, etcd, health, PIDs, VIP and alarms
  fault NODE KIND           KIND: ${lab.FAULTS.join(" | ")}
  down                      stop every lab process by PID
Common: --dir DIR (default .lab)`;

export async function main(args: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        nodes: { type: "string" },
        dir: { type: "string" },
        backend: { type: "string" },
        speed: { type: "string" },
        keys: { type: "string" },
        mode: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : error}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const dir = String(values.dir ?? ".lab");
  const [cmd, ...rest] = positionals;
  const number = (name: string, dflt: number) => {
    const v = values[name] === undefined ? dflt : Number(values[name]);
    if (!Number.isFinite(v) || v <= 0) {
      throw new lab.LabError(`--${name} must be a positive number`);
    }
    return v;
  };
  const t0 = performance.now();
  const took = () => `${((performance.now() - t0) / 1000).toFixed(1)}s`;
  try {
    switch (cmd) {
      case "up": {
        const backend = String(values.backend ?? "auto");
        if (!["auto", "etcd", "model"].includes(backend)) {
          throw new lab.LabError(`--backend must be auto, etcd or model, not "${backend}"`);
        }
        const s = await lab.up(dir, {
          nodes: number("nodes", 3),
          backend: backend as Backend | "auto",
          speed: values.speed === undefined ? undefined : number("speed", 20),
          log: (l) => console.error(`==> ${l}`),
        });
        console.error(
          `==> lab up in ${took()}: ${s.nodes.map((n) => n.label).join(", ")}; ` +
            `VIP ${s.vip}; ${s.backend} backend; speed ${s.speed}x`,
        );
        console.error(`==> rehearse each step by hand (fake talosctl, this lab only):`);
        console.log(lab.guide(s).join("\n"));
        const at = dir === ".lab" ? "" : ` --dir ${dir}`;
        console.error(
          `==> first make the incident: deno task lab load${at} && deno task lab break${at}; ` +
            `no talosconfig is needed (the fake talosctl ignores it); ` +
            `stop the lab with: deno task lab down${at}`,
        );
        return 0;
      }
      case "load": {
        const rev = await lab.load(dir, number("keys", lab.DEFAULT_KEYS));
        console.error(`==> loaded in ${took()}: revision ${rev}`);
        return 0;
      }
      case "break": {
        const mode = String(values.mode ?? "incident");
        if (!lab.BREAK_MODES.includes(mode as lab.BreakMode)) {
          throw new lab.LabError(
            `--mode must be one of ${lab.BREAK_MODES.join(", ")}, not "${mode}"`,
          );
        }
        const b = await lab.breakCluster(dir, lab.DEFAULT_LATE_KEYS, mode as lab.BreakMode);
        console.error(`==> broken in ${took()}: ${lab.brokenText(b)}`);
        return 0;
      }
      case "status":
        console.log(await lab.status(dir));
        return 0;
      case "fault": {
        const [node, kind] = rest;
        if (!node || !lab.FAULTS.includes(kind as lab.Fault)) {
          throw new lab.LabError(`Usage: deno task lab fault NODE ${lab.FAULTS.join("|")}`);
        }
        await lab.fault(dir, node, kind as lab.Fault);
        console.error(`==> fault ${kind} on ${node}`);
        return 0;
      }
      case "down": {
        const n = await lab.down(dir);
        console.error(`==> lab down: ${n} processes stopped by PID`);
        return 0;
      }
      default:
        console.error(cmd ? `Unknown lab command "${cmd}"\n\n${USAGE}` : USAGE);
        return 2;
    }
  } catch (error) {
    console.error(`lab ${cmd}: ${error instanceof Error ? error.message : error}`);
    return error instanceof lab.LabError ? 2 : 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
