/**
 * What each copy holds (revision, keys, size, hash), read with `etcdutl snapshot status -w
 * json`, or `etcdctl snapshot status` (ETCDCTL_API=3) when etcdutl is absent, and the choice
 * of the seed: the highest revision, and nothing else (copies taken at the same moment have
 * different hashes on different members).
 */

import type { Ctx } from "../run/context.ts";
import { runCommand, tail } from "../run/command.ts";

export interface ToolStatus {
  hash: number;
  revision: number;
  /** Meaning differs: every bucket entry (etcd ≤ 3.5) or distinct live keys (3.6+). */
  totalKey: number;
  totalSize: number;
  /** Storage version (3.6+ tools only). */
  version?: string;
  /** Which tool answered. */
  source: string;
}

/** Thrown when no status tool can read a copy; the message names the file and the tool. */
export class StatusToolError extends Error {}

/**
 * Parses `snapshot status -w json` without `JSON.parse` numbers: every integer field is read
 * as text and must fit a safe integer, so an id-sized value is never silently rounded.
 */
export function parseSnapshotStatusJson(text: string): Omit<ToolStatus, "source"> {
  const field = (name: string): number => {
    const m = text.match(new RegExp(`"${name}"\\s*:\\s*(-?\\d+)`));
    if (!m) throw new StatusToolError(`no "${name}" in snapshot status output: ${tail(text, 2)}`);
    const n = Number(m[1]);
    if (!Number.isSafeInteger(n)) {
      throw new StatusToolError(`"${name}" value ${m[1]} is not a safe integer`);
    }
    return n;
  };
  const version = text.match(/"version"\s*:\s*"([^"]*)"/)?.[1];
  return {
    hash: field("hash"),
    revision: field("revision"),
    totalKey: field("totalKey"),
    totalSize: field("totalSize"),
    ...(version !== undefined ? { version } : {}),
  };
}

/** Runs etcdutl (or etcdctl 3.4) on one file. */
export async function toolStatus(ctx: Ctx, node: string, file: string): Promise<ToolStatus> {
  const tools: { argv: string[]; env?: Record<string, string> }[] = [
    { argv: [ctx.opts.etcdutl ?? "etcdutl", "snapshot", "status", file, "-w", "json"] },
  ];
  if (!ctx.opts.etcdutl) {
    tools.push({
      argv: ["etcdctl", "snapshot", "status", file, "-w", "json"],
      env: { ETCDCTL_API: "3" },
    });
  }
  const errors: string[] = [];
  for (const tool of tools) {
    const r = await runCommand(ctx, node, tool.argv, { step: "status", env: tool.env })
      .catch((error) => ({
        code: 127,
        stdout: "",
        stderr: String(error.message),
        timedOut: false,
      }));
    if (r.code === 127) {
      errors.push(`${tool.argv[0]} not found`);
      continue;
    }
    if (r.code !== 0) {
      throw new StatusToolError(
        `${tool.argv[0]} cannot read "${file}": ${tail(r.stderr, 2) || `exit ${r.code}`}`,
      );
    }
    return { ...parseSnapshotStatusJson(r.stdout), source: tool.argv[0] };
  }
  throw new StatusToolError(`No status tool for "${file}": ${errors.join(", ")}`);
}

export interface SeedChoice {
  seed: string;
  revision: number;
  /** Other nodes with the same revision (the first in --nodes order wins). */
  ties: string[];
}

/** The node whose copy has the highest revision; ties go to the first in `order`. */
export function pickSeed(
  revisions: { node: string; revision: number }[],
  order: string[],
): SeedChoice | undefined {
  const sorted = [...revisions].sort((a, b) =>
    b.revision - a.revision || order.indexOf(a.node) - order.indexOf(b.node)
  );
  const best = sorted[0];
  if (!best) return undefined;
  return {
    seed: best.node,
    revision: best.revision,
    ties: sorted.slice(1).filter((r) => r.revision === best.revision).map((r) => r.node),
  };
}
