/**
 * The command-line contract shared by every task: same flags, same meaning, parsed in one
 * place. Unknown flags and bad values are `UsageError`s (exit 2); `--help` is handled by the
 * caller (`lib/recovery/main.ts`).
 *
 * @example
 * ```ts
 * import { parseOptions } from "./cli.ts";
 * const opts = parseOptions(["--nodes", "10.0.0.1,10.0.0.2,10.0.0.3", "--yes"], {});
 * ```
 */

import { readdirSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { UsageError } from "./errors.ts";
import { parseNodeList } from "./nodes.ts";

/** Default deadline for each wait. */
export const DEFAULT_TIMEOUT_MS = 10 * 60_000;
export const DEFAULT_OUT = "./etcd-recovery";
/** How long rejoin lets a wiped node begin its join by itself before it reboots it. */
export const DEFAULT_JOIN_GRACE_MS = 30_000;

export interface Options {
  /** Control-plane nodes, in the order given. Empty only where a task reads them from OUT. */
  nodes: string[];
  seed?: string;
  vip?: string;
  out: string;
  talosconfig?: string;
  yes: boolean;
  dryRun: boolean;
  /** Deadline for each wait, in milliseconds. */
  timeoutMs: number;
  /** True when --timeout was given (some steps have a shorter default). */
  timeoutGiven: boolean;
  force: boolean;
  /**
   * rejoin: how long a wiped node may go without beginning to join, counted from when the
   * seed runs with no learner in flight, before it is rebooted. @default DEFAULT_JOIN_GRACE_MS
   */
  joinGraceMs: number;
  /** rejoin: reboot every other node, one at a time (the seed runbook's rolling reboot). */
  rollingReboot: boolean;
  /** recover: the full rebuild, even where diagnose finds a smaller way back. */
  full: boolean;
  json: boolean;
  help: boolean;
  /** after: do not restart the workers' kubelets. */
  noKubeletRestart: boolean;
  /** after: delete the stuck pods a controller recreates, one at a time. */
  restartStuck: boolean;
  /** status: also compute each copy's hash as `etcdctl snapshot status` prints it. */
  etcdHash: boolean;
  /** status: hash every copy again, even one unchanged since its sha256 was taken. */
  rehash: boolean;
  talosctl: string;
  etcdutl?: string;
  kubectl?: string;
  /** Arguments after the flags (only `lab` uses them). */
  positionals: string[];
}

const FLAGS = {
  nodes: { type: "string" },
  seed: { type: "string" },
  vip: { type: "string" },
  out: { type: "string" },
  talosconfig: { type: "string" },
  yes: { type: "boolean", short: "y" },
  "dry-run": { type: "boolean" },
  timeout: { type: "string" },
  force: { type: "boolean" },
  "join-grace": { type: "string" },
  "rolling-reboot": { type: "boolean" },
  full: { type: "boolean" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  "no-kubelet-restart": { type: "boolean" },
  "restart-stuck": { type: "boolean" },
  "etcd-hash": { type: "boolean" },
  rehash: { type: "boolean" },
} as const;

/** The flags every task accepts, for `--help`. */
export const COMMON_FLAGS_HELP = `Flags:
  --nodes A,B,C        control-plane nodes (IPv4, IPv6 or DNS names); env TALOS_NODES
  --seed N             node to restore from (must be in --nodes); default: highest revision
  --vip V              control-plane VIP, for verify; env TALOS_VIP
  --out DIR            db copies, manifest, journal and report (default ${DEFAULT_OUT})
  --talosconfig PATH   passed to every talosctl call (talosctl honours TALOSCONFIG itself)
  --yes                run destructive steps without asking
  --dry-run            print the commands as a bash script; run nothing
  --timeout 10m        deadline for each wait (ms, s, m, h; e.g. 90s, 1m30s)
  --force              override a refusal that names this flag
  --join-grace 30s     rejoin: reboot a node that has not begun to join this long after the
                       seed runs with no learner in flight (same units as --timeout)
  --rolling-reboot     rejoin: reboot every other node one at a time, even those that would
                       rejoin by themselves (the seed runbook's rolling reboot)
  --full               recover: the full rebuild (every node wiped), even where a smaller
                       way back exists (replace, defrag, disarm)
  --json               machine-readable output where the step has data
  --no-kubelet-restart after, recover: leave the workers' kubelets alone
  --restart-stuck      after, recover: delete the stuck pods a controller recreates
  --etcd-hash          status: also the HASH column as etcdctl snapshot status prints it
                       (CRC-32C over the whole db: about twice the read time)
  --rehash             status, diagnose: check every copy's sha256 again, even one whose file is
                       unchanged since extract (or an earlier status) hashed it
  --help               this text
Environment: TALOSCTL, ETCDUTL, KUBECTL (tool paths; default: found on PATH)
Exit codes: 0 done or plan printed, 1 failed after the cluster may have changed,
            2 refused or bad usage (nothing changed), 3 declined, 130 interrupted`;

/** Parses `90s`, `10m`, `1h`, `1m30s`, `500ms` into milliseconds. */
export function parseDuration(raw: string, flag = "--timeout"): number {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let pos = 0;
  let match: RegExpExecArray | null;
  while ((match = re.exec(raw)) !== null) {
    const n = Number(match[1]);
    total += n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] as "ms" | "s" | "m" | "h"];
    pos = re.lastIndex;
  }
  if (raw === "" || pos !== raw.length || Math.round(total) <= 0) {
    throw new UsageError(
      `Invalid ${flag} value "${raw}": use a duration like 90s, 10m or 1m30s`,
    );
  }
  return Math.round(total);
}

export interface ParseSettings {
  /** --nodes may be omitted (the task reads them from OUT). @default false */
  nodesOptional?: boolean;
  /** Positional arguments allowed. @default false */
  positionals?: boolean;
  /** The task reads the copies without acting on them: `--rehash` is accepted. @default false */
  rehash?: boolean;
  /** The task prints etcdctl's figures of the copies: `--etcd-hash` is accepted. @default false */
  etcdHash?: boolean;
}

/** Parses argv against the common contract. Throws `UsageError` on anything wrong. */
export function parseOptions(
  args: string[],
  env: Record<string, string | undefined>,
  settings: ParseSettings = {},
): Options {
  let values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args,
      options: FLAGS,
      strict: true,
      allowPositionals: settings.positionals ?? false,
    }));
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(message.replace(/\. To specify a positional.*$/s, ""));
  }
  const help = values.help ?? false;
  // Flags that only the read-only looks at the copies act on: elsewhere they would be ignored
  // without a word (wipe, bootstrap and recover hash every copy whatever is asked)
  if (values.rehash && !settings.rehash) {
    throw new UsageError(
      "--rehash is a flag of status and diagnose: this task hashes every copy it uses anyway",
    );
  }
  if (values["etcd-hash"] && !settings.etcdHash) {
    throw new UsageError("--etcd-hash is a flag of status (etcdctl's HASH column)");
  }
  const rawNodes = values.nodes ?? env.TALOS_NODES;
  let nodes: string[] = [];
  if (rawNodes !== undefined && rawNodes !== "") {
    nodes = parseNodeList(rawNodes, values.nodes !== undefined ? "--nodes" : "TALOS_NODES");
  } else if (!help && !settings.nodesOptional) {
    throw new UsageError("Missing --nodes: name every control-plane node (or set TALOS_NODES)");
  }
  const seed = values.seed;
  if (seed !== undefined) {
    if (seed.startsWith("-") || seed === "") {
      throw new UsageError(`Invalid --seed value "${seed}"`);
    }
    if (nodes.length > 0 && !nodes.includes(seed)) {
      throw new UsageError(`Seed "${seed}" is not in --nodes (${nodes.join(",")})`);
    }
  }
  const vip = values.vip ?? (env.TALOS_VIP || undefined);
  if (vip !== undefined) {
    parseNodeList(vip, "--vip");
    if (nodes.includes(vip)) {
      throw new UsageError(`--vip "${vip}" is also in --nodes: the VIP is never a node address`);
    }
  }
  for (const [flag, value] of [["--out", values.out], ["--talosconfig", values.talosconfig]]) {
    if (value !== undefined && (value === "" || value.startsWith("-"))) {
      throw new UsageError(`Invalid ${flag} value "${value}"`);
    }
  }
  const out = values.out ?? DEFAULT_OUT;
  const notDir = fileOnPath(out);
  if (notDir) {
    throw new UsageError(
      `--out "${out}" cannot be a directory: "${notDir}" is a file; name a directory for the copies`,
    );
  }
  const foreign = help ? [] : foreignFiles(out);
  if (foreign.length > 0) {
    const named = foreign.slice(0, 3).join(", ") + (foreign.length > 3 ? ", …" : "");
    throw new UsageError(
      `--out "${out}" holds files this tool did not write (${named}): it puts etcd copies ` +
        `(secrets) there and makes the folder private (0700); name a new or empty directory`,
    );
  }
  return {
    nodes,
    seed,
    vip,
    out,
    talosconfig: values.talosconfig,
    yes: values.yes ?? false,
    dryRun: values["dry-run"] ?? false,
    timeoutMs: values.timeout !== undefined ? parseDuration(values.timeout) : DEFAULT_TIMEOUT_MS,
    timeoutGiven: values.timeout !== undefined,
    force: values.force ?? false,
    joinGraceMs: values["join-grace"] !== undefined
      ? parseDuration(values["join-grace"], "--join-grace")
      : DEFAULT_JOIN_GRACE_MS,
    rollingReboot: values["rolling-reboot"] ?? false,
    full: values.full ?? false,
    json: values.json ?? false,
    help,
    noKubeletRestart: values["no-kubelet-restart"] ?? false,
    restartStuck: values["restart-stuck"] ?? false,
    etcdHash: values["etcd-hash"] ?? false,
    rehash: values.rehash ?? false,
    talosctl: env.TALOSCTL || "talosctl",
    etcdutl: env.ETCDUTL || undefined,
    kubectl: env.KUBECTL || undefined,
    positionals,
  };
}

/** The first existing part of `path` (itself or an ancestor) when it is not a directory. */
function fileOnPath(path: string): string | undefined {
  for (let p = resolve(path);; p = dirname(p)) {
    try {
      return statSync(p).isDirectory() ? undefined : p;
    } catch {
      if (p === dirname(p)) return undefined; // nothing of it exists, not even "/"
    }
  }
}

/**
 * What a directory `out` holds besides what this tool writes there, when it has neither a
 * manifest nor a journal (an OUT of an earlier run is always ours).
 */
function foreignFiles(out: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(out);
  } catch {
    return []; // not there yet
  }
  if (entries.includes("manifest.json") || entries.includes("journal.jsonl")) return [];
  // lost+found: the root of a freshly made filesystem (the place for copies when space is short)
  return entries.filter((e) => !/^(report\.md|db\..+|lost\+found)$/.test(e)).sort();
}
