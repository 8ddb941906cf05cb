/**
 * Pre-flight, before anything changes: one line per finding. talosctl answers and its
 * version; the talosconfig is readable and not Omni's; every node answers and runs etcd (a
 * worker or an unknown address is refused); the node count and its quorum; free space in OUT.
 */

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Ctx } from "../run/context.ts";
import { RefusedError } from "../run/errors.ts";
import { humanizeBytes } from "../run/humanize.ts";
import { quorum } from "../run/nodes.ts";
import { isUnreachable, parseServiceInfo, parseTable, type ServiceInfo } from "./parse.ts";
import { tail } from "../run/command.ts";
import { sub, talos } from "./talosctl.ts";

/** etcd's default space quota: a db larger than this is rare. */
export const TYPICAL_MAX_DB_BYTES = 2 * 1024 ** 3;
/** Below this much free space in OUT, extraction is refused. */
export const MIN_FREE_BYTES = 256 * 1024 ** 2;

/** Where talosctl would read its config, as talosctl looks it up. */
export function talosconfigPath(ctx: Ctx): string | undefined {
  const env = ctx.deps.env;
  return ctx.opts.talosconfig ?? env.TALOSCONFIG ??
    (env.TALOS_HOME ? join(env.TALOS_HOME, "config") : undefined) ??
    (env.HOME ? join(env.HOME, ".talos", "config") : undefined);
}

/** Runs every check; logs each finding; throws one `RefusedError` listing every refusal. */
/** What pre-flight saw of each node: its Talos tag and its etcd service. */
export type NodeLooks = Map<string, { version: { tag: string }; service: ServiceInfo }>;

export async function preflight(ctx: Ctx, step: string): Promise<NodeLooks> {
  const looks: NodeLooks = new Map();
  const refusals: string[] = [];
  const forcible: string[] = [];
  const { nodes } = ctx.opts;

  const config = talosconfigPath(ctx);
  if (config && existsSync(config)) {
    let text = "";
    try {
      text = readFileSync(config, "utf8");
      ctx.log.ok(`talosconfig: ${config}`);
    } catch (error) {
      refusals.push(`talosconfig ${config} is not readable: ${(error as Error).message}`);
    }
    if (/siderov1|omni/i.test(text)) {
      forcible.push(
        `talosconfig ${config} is Omni's (siderov1 / omni endpoint): recover through Omni's etcd backups, not talosctl`,
      );
    }
  } else if (ctx.opts.talosconfig) {
    refusals.push(`--talosconfig ${ctx.opts.talosconfig} does not exist`);
  } else {
    ctx.log.warn(
      `no talosconfig found${config ? ` at ${config}` : ""}: talosctl may not reach the nodes`,
    );
  }

  const answers = await Promise.all(nodes.map(async (node) => {
    const version = await talos(ctx, node, sub.version(), { step });
    if (version.code !== 0) {
      const why = isUnreachable(version.stderr) ? "does not answer" : "answers with an error";
      return `"${node}" ${why}: ${tail(version.stderr, 1) || `exit ${version.code}`}`;
    }
    const tags = [...version.stdout.matchAll(/^\s*Tag:\s*(\S+)/gm)].map((m) => m[1]);
    if (tags.length < 2) {
      return `"${node}": unreadable talosctl version output: ${tail(version.stdout, 1)}`;
    }
    const service = await talos(ctx, node, sub.serviceEtcd(), { step });
    if (/not registered/.test(service.stderr)) {
      return `"${node}" runs no etcd: a worker, not a control-plane node`;
    }
    if (service.code !== 0) return `"${node}": ${tail(service.stderr, 1)}`;
    const info = parseServiceInfo(service.stdout).find((b) => b.id === "etcd");
    const state = info?.state;
    if (!info || !state) {
      return `"${node}": unreadable service etcd output: ${tail(service.stdout, 1)}`;
    }
    looks.set(node, { version: { tag: tags[1] ?? "?" }, service: info });
    ctx.log.ok(
      `${node}: control-plane node, Talos ${tags[1] ?? "?"} (talosctl ${
        tags[0] ?? "?"
      }), etcd ${state}`,
    );
    await detectEtcdVolume(ctx, node, step);
    return undefined;
  }));
  refusals.push(...answers.filter((a): a is string => a !== undefined));

  ctx.log.ok(`${nodes.length} nodes: quorum is ${quorum(nodes.length)}`);
  const free = ctx.deps.freeBytes(ctx.opts.out);
  let lowSpace = false;
  if (free !== undefined) {
    if (free < MIN_FREE_BYTES) {
      lowSpace = true;
      refusals.push(`only ${humanizeBytes(free)} free for ${ctx.opts.out}`);
    } else if (free < nodes.length * TYPICAL_MAX_DB_BYTES) {
      ctx.log.warn(
        `${humanizeBytes(free)} free for ${ctx.opts.out}: enough only for dbs under ${
          humanizeBytes(free / nodes.length)
        } each`,
      );
    } else ctx.log.ok(`${humanizeBytes(free)} free for ${ctx.opts.out}`);
  }

  // one refusal alone is said once, by the error that ends the run
  const errors = refusals.length + (ctx.opts.force ? 0 : forcible.length);
  if (errors > 1) { for (const r of refusals) ctx.log.error(r); }
  for (const f of forcible) {
    if (ctx.opts.force) ctx.log.warn(f);
    else if (errors > 1) ctx.log.error(f);
  }
  if (refusals.length > 0 || (forcible.length > 0 && !ctx.opts.force)) {
    const all = [...refusals, ...(ctx.opts.force ? [] : forcible)];
    throw new RefusedError(`Pre-flight refused: ${all.join("; ")}`, {
      hint: refusals.length === 1 && lowSpace
        ? `free space there, or pass an --out on a filesystem with room for every node's db (${
          humanizeBytes(MIN_FREE_BYTES)
        } at the very least)`
        : refusals.length > 0
        ? `check --nodes (control-plane addresses only) and the talosconfig${
          lowSpace ? "; free space for --out" : ""
        }`
        : "pass --force if this cluster is not managed by Omni",
    });
  }
  return looks;
}

/**
 * A dedicated ETCD partition is not wiped with EPHEMERAL: such nodes get
 * `--system-labels-to-wipe ETCD` too (recorded in `ctx.wipeLabels`). Unknown (older Talos,
 * or an error) means EPHEMERAL only, said so.
 */
async function detectEtcdVolume(ctx: Ctx, node: string, step: string): Promise<void> {
  const r = await talos(ctx, node, sub.etcdVolume(), { step });
  const type = r.code === 0
    ? parseTable(r.stdout).find((row) => row.ID === "ETCD")?.TYPE // the second TYPE column
    : undefined;
  if (type === "partition") {
    ctx.wipeLabels.set(node, ["EPHEMERAL", "ETCD"]);
    ctx.log.ok(
      `${node}: etcd has a dedicated ETCD partition: the wipe adds --system-labels-to-wipe ETCD`,
    );
  } else if (type === undefined) {
    ctx.log.info(
      `${node}: ETCD volume status unknown (${
        tail(r.stderr || r.stdout, 1) || "no row"
      }); wiping EPHEMERAL, which holds /var/lib/etcd unless ETCD is its own partition`,
    );
  }
}
