/**
 * The one top-level handler: parses flags, builds the context, runs a task, maps every
 * error to its exit code, and always says what state the cluster is in and how to continue.
 */

import { existsSync, readdirSync, rmSync } from "node:fs";
import { setTimeout as sleepTimer } from "node:timers/promises";
import { workerReader } from "../db/reader.ts";
import { type Deps, freeBytes, type Shell } from "../run/deps.ts";
import { COMMON_FLAGS_HELP, type Options, parseOptions, type ParseSettings } from "../run/cli.ts";
import { createCtx, type Ctx } from "../run/context.ts";
import {
  CommandError,
  EXIT_FAILED,
  EXIT_OK,
  EXIT_REFUSED,
  InterruptedError,
  RecoveryError,
  UsageError,
} from "../run/errors.ts";
import { Journal } from "../run/journal.ts";
import { evenCountWarning } from "../run/nodes.ts";
import { writeReport } from "./report.ts";
import { shellLine, tail } from "../run/command.ts";

export interface TaskDef {
  name: string;
  /** One line: what the task does and what it changes. */
  summary: string;
  /** Usage line(s) shown by --help. */
  usage: string;
  parse?: ParseSettings;
  /** Runs the task. Returns the exit code (0 when omitted). */
  run: (ctx: Ctx) => Promise<number | void>;
}

/** Builds the `deno task X …` command that repeats or continues a run. */
export function taskCommand(task: string, opts: Options, extra: string[] = []): string {
  const parts = ["--nodes", opts.nodes.join(",")];
  if (opts.seed && !extra.includes("--seed")) parts.push("--seed", opts.seed);
  if (opts.vip) parts.push("--vip", opts.vip);
  parts.push("--out", opts.out);
  if (opts.talosconfig) parts.push("--talosconfig", opts.talosconfig);
  return ["deno task", task, shellLine([...parts, ...extra])].join(" ");
}

/** Runs a task with `args`; returns the exit code (never throws). */
export async function runTask(
  def: TaskDef,
  args: string[],
  deps: Deps = realDeps(),
): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(args, deps.env, def.parse);
  } catch (error) {
    if (error instanceof UsageError) {
      deps.stderr(`error: ${error.message}\nRun "deno task ${def.name} --help" for usage.\n`);
      return error.exitCode;
    }
    throw error;
  }
  if (opts.help) {
    deps.stdout(`${def.name}: ${def.summary}\n\nUsage:\n${def.usage}\n\n${COMMON_FLAGS_HELP}\n`);
    return EXIT_OK;
  }
  const ctx = createCtx(def.name, opts, deps);
  const earlier = earlierClusterState(opts.out);
  if (earlier) ctx.clusterState = `${LEFT_EARLIER}${earlier}`;
  const warning = evenCountWarning(opts.nodes);
  if (warning) ctx.log.warn(warning);
  const outExisted = existsSync(opts.out);
  ctx.journal.record({ type: "run", argv: args, nodes: opts.nodes });
  let code: number = EXIT_OK;
  let failure: string | undefined;
  try {
    code = (await def.run(ctx)) ?? EXIT_OK;
  } catch (error) {
    code = error instanceof RecoveryError ? error.exitCode : EXIT_FAILED;
    failure = error instanceof Error ? error.message : String(error);
    if (error instanceof InterruptedError && !ctx.continueWith) {
      // stopped before any step named its own way on: the same command again
      ctx.continueWith = taskCommand(def.name, opts, opts.yes ? ["--yes"] : []);
    }
    reportError(ctx, error);
  }
  const planOnly = failure !== undefined && code === EXIT_OK; // PlanPrinted: nothing changed
  // A plan, or a refusal before any call: if this run's journal made OUT, leave no trace.
  if ((planOnly || code === EXIT_REFUSED) && !outExisted && onlyJournal(opts.out)) {
    if (!Journal.readAll(opts.out).some((e) => e.type === "call")) {
      rmSync(opts.out, { recursive: true });
      return code;
    }
  }
  if (!opts.dryRun && (outExisted || existsSync(opts.out))) {
    ctx.journal.record({ type: "fact", key: "clusterState", value: ctx.clusterState });
    if (ctx.continueWith) {
      ctx.journal.record({ type: "fact", key: "continueWith", value: ctx.continueWith });
    }
    ctx.journal.record({
      type: "end",
      exitCode: code,
      ...(planOnly ? { planOnly } : failure ? { error: failure } : {}),
    });
    const path = writeReport(opts.out);
    if (code !== EXIT_OK || def.name === "recover") ctx.log.info(`report: ${path}`);
    if (code === EXIT_OK && ctx.continueWith) ctx.log.info(`next: ${ctx.continueWith}`);
    // the copies are the cluster's data: every Secret, in clear
    if (!planOnly && ["extract", "recover"].includes(def.name) && holdsCopies(opts.out)) {
      ctx.log.info(
        `${opts.out} holds raw etcd copies (every Secret of the cluster, unencrypted): keep it ` +
          `private, and delete it once the incident is closed`,
      );
    }
  }
  return code;
}

/** Whether `out` holds nothing but a journal. */
function onlyJournal(out: string): boolean {
  try {
    return readdirSync(out).every((e) => e === "journal.jsonl");
  } catch {
    return false;
  }
}

const LEFT_EARLIER = "unchanged by this run; an earlier run left it: ";

/**
 * What the last run in OUT said of the cluster, when it changed something (a wipe, a restore):
 * a later run that changes nothing must not make it look untouched.
 */
function earlierClusterState(out: string): string | undefined {
  let state: string | undefined;
  for (const e of Journal.readAll(out)) {
    if (e.type === "fact" && e.key === "clusterState" && typeof e.value === "string") {
      state = e.value;
    }
  }
  if (state?.startsWith(LEFT_EARLIER)) return state.slice(LEFT_EARLIER.length);
  if (!state || state.startsWith("unchanged by this run")) return undefined;
  return state;
}

function reportError(ctx: Ctx, error: unknown): void {
  if (!(error instanceof RecoveryError)) {
    ctx.log.error(`unexpected: ${error instanceof Error ? error.stack : String(error)}`);
  } else if (error.exitCode === 0) {
    ctx.log.info(error.message);
  } else {
    ctx.log.error(error.message);
  }
  if (error instanceof CommandError && error.stderr.trim() !== "") {
    ctx.log.raw(`    last lines of stderr of: ${error.command}\n${indent(tail(error.stderr, 5))}`);
  }
  if (error instanceof RecoveryError && error.hint) ctx.log.info(`next: ${error.hint}`);
  if (error instanceof RecoveryError && error.exitCode === 0) return;
  ctx.log.info(`cluster state: ${ctx.clusterState}`);
  if (ctx.continueWith) ctx.log.info(`to continue: ${ctx.continueWith}`);
}

function indent(text: string): string {
  return text.split("\n").map((l) => `      ${l}`).join("\n");
}

/** `if (import.meta.main) await main(def)`: runs with the real world and exits. */
export async function mainEntry(def: TaskDef): Promise<never> {
  const code = await runTask(def, Deno.args);
  Deno.exit(code);
}

const encoder = new TextEncoder();

function writeAll(file: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = encoder.encode(text);
  let off = 0;
  while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
}

async function askStdin(question: string): Promise<string | null> {
  writeAll(Deno.stderr, question);
  const buf = new Uint8Array(1024);
  let line = "";
  while (true) {
    const n = await Deno.stdin.read(buf);
    if (n === null) return line === "" ? null : line;
    line += new TextDecoder().decode(buf.subarray(0, n));
    if (line.includes("\n")) return line.split("\n")[0];
  }
}

/**
 * zx's `$`, loaded at its first use: zx costs about 70 ms of start-up, which the tasks that
 * run no command (status) and the others' first look (copies read in workers meanwhile) need
 * not wait for. Only the form the tasks call is served: `$(options)` then a template.
 */
function lazyZx(): Shell {
  let loaded: Promise<Shell> | undefined;
  const load = () =>
    loaded ??= import("zx").then((zx) => zx.$({ verbose: false, quiet: true }) as Shell);
  const withOptions =
    (options: Parameters<Shell>[0]) => (pieces: TemplateStringsArray, ...args: unknown[]) =>
      load().then(($) => ($(options as never) as unknown as Shell)(pieces, ...args));
  return withOptions as unknown as Shell;
}

/** The real world: zx, the process environment, Deno's stdio, signals. */
export function realDeps(): Deps {
  const controller = new AbortController();
  const onSignal = (name: string) => () => {
    if (!controller.signal.aborted) controller.abort(new Error(`received ${name}`));
  };
  Deno.addSignalListener("SIGINT", onSignal("SIGINT"));
  Deno.addSignalListener("SIGTERM", onSignal("SIGTERM"));
  return {
    $: lazyZx(),
    env: Deno.env.toObject(),
    isTerminal: Deno.stdin.isTerminal() && Deno.stderr.isTerminal(),
    ask: askStdin,
    stdout: (t) => writeAll(Deno.stdout, t),
    stderr: (t) => writeAll(Deno.stderr, t),
    now: () => Date.now(),
    sleep: (ms, signal) => sleepTimer(ms, undefined, { signal }),
    signal: controller.signal,
    db: workerReader(controller.signal),
    freeBytes,
  };
}

/** Whether OUT holds a raw copy of a node's db (`OUT/db.N/db`). */
function holdsCopies(out: string): boolean {
  try {
    return readdirSync(out).some((name) =>
      name.startsWith("db.") && existsSync(`${out}/${name}/db`)
    );
  } catch {
    return false;
  }
}
