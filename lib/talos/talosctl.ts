/**
 * talosctl: the exact command lines of the runbook, and one function that runs them.
 *
 * Every call names its node as both endpoint and node (`-e N -n N`): the VIP must never be
 * the endpoint, and a recovering cluster has no other reliable one. Mutating calls are echoed
 * before they run, pasteable. Every call is journaled and has a deadline.
 */

import type { Ctx } from "../run/context.ts";
import { CommandError } from "../run/errors.ts";
import { runCommand, shellLine, tail } from "../run/command.ts";
import type { CallOptions, RunResult } from "../run/command.ts";

/** Where etcd keeps its bbolt file on a Talos node. */
export const ETCD_DB_PATH = "/var/lib/etcd/member/snap/db";

/** Deadline of one `cp` (a large db over a slow link). */
export const COPY_TIMEOUT_MS = 15 * 60_000;

/** The talosctl subcommands of the runbook (what follows `-e N -n N`). */
export const sub = {
  copyDb: (dir: string) => ["cp", ETCD_DB_PATH, dir],
  serviceEtcd: () => ["service", "etcd"],
  reset: (labels: string[] = ["EPHEMERAL"]) => [
    "reset",
    ...labels.flatMap((l) => ["--system-labels-to-wipe", l]),
    "--graceful=false",
    "--reboot",
    "--wait=false",
  ],
  bootstrap: (file: string) => ["bootstrap", `--recover-from=${file}`, "--recover-skip-hash-check"],
  alarmList: () => ["etcd", "alarm", "list"],
  alarmDisarm: () => ["etcd", "alarm", "disarm"],
  members: () => ["etcd", "members"],
  reboot: () => ["reboot", "--wait=false"],
  addresses: () => ["get", "addresses"],
  version: () => ["version"],
  etcdVolume: () => ["get", "volumestatus", "ETCD"],
};

/** talosctl and the flags of every call (`--talosconfig`), before `-e N -n N`. */
export function talosBase(ctx: Ctx): string[] {
  const tc = ctx.opts.talosconfig ? ["--talosconfig", ctx.opts.talosconfig] : [];
  return [ctx.opts.talosctl, ...tc];
}

/** The full argv of a talosctl call against `node`. */
export function talosArgv(ctx: Ctx, node: string, args: string[]): string[] {
  return [...talosBase(ctx), "-e", node, "-n", node, ...args];
}

/** Runs `talosctl -e node -n node …args`; never throws on a non-zero exit. */
export function talos(
  ctx: Ctx,
  node: string,
  args: string[],
  options: CallOptions,
): Promise<RunResult> {
  return runCommand(ctx, node, talosArgv(ctx, node, args), options);
}

/** Like `talos`, but a non-zero exit or a deadline is a `CommandError` with the stderr tail. */
export async function talosOk(
  ctx: Ctx,
  node: string,
  args: string[],
  options: CallOptions,
): Promise<string> {
  const r = await talos(ctx, node, args, options);
  if (r.code !== 0) throw commandFailure(ctx, node, args, r);
  return r.stdout;
}

export function commandFailure(
  ctx: Ctx,
  node: string,
  args: string[],
  r: RunResult,
  hint?: string,
): CommandError {
  const what = r.timedOut ? "did not answer in time" : `failed (exit ${r.code ?? "signal"})`;
  return new CommandError(
    `talosctl ${args.join(" ")} on "${node}" ${what}: ${tail(r.stderr, 3) || "(no output)"}`,
    shellLine(talosArgv(ctx, node, args)),
    r.code,
    r.stderr,
    { hint },
  );
}
