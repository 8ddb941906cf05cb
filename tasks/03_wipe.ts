/**
 * Step 3 — wipe: reset every control-plane node at once, so no broken node can sync the bad
 * state back.
 *
 * What:     every node at once, `talosctl -e N -n N reset --system-labels-to-wipe EPHEMERAL
 *           --graceful=false --reboot --wait=false` (graceful needs a working etcd; --wait
 *           is known to hang), then polls each node until it went down and came back with
 *           an empty etcd (STATE Preparing, event history younger than the reset).
 * Changes:  DESTROYS etcd on every node. The copies in OUT are then the only data.
 * Refuses:  without an intact copy of the seed (never overridable); while any node's copy is
 *           missing or unreadable, a --seed below the highest revision, or a healthy cluster
 *           (each overridable with --force). Asks first unless --yes.
 * Raw:      talosctl -e 192.168.53.10 -n 192.168.53.10 reset --system-labels-to-wipe EPHEMERAL --graceful=false --reboot --wait=false
 * Usage:    deno task wipe --nodes A,B,C [--seed N] [--out DIR] [--yes] [--force] [--timeout 10m]
 */

import { type Ctx, step } from "../lib/context.ts";
import type { Deps } from "../lib/deps.ts";
import { RefusedError, StepError } from "../lib/errors.ts";
import { checkEveryCopy, inspectCopies, resolveSeed } from "../lib/inspect.ts";
import { mainEntry, runTask, taskCommand, type TaskDef } from "../lib/main.ts";
import { confirm, printPlan } from "../lib/confirm.ts";
import {
  askCluster,
  describe,
  healthyEvidence,
  lookAtEtcd,
  membersOutside,
  SERVICE_POLL_MS,
  startedWithin,
} from "../lib/cluster.ts";
import { poll } from "../lib/poll.ts";
import {
  parallelPlan,
  serviceIsPlan,
  shellLine,
  sub,
  talos,
  talosArgv,
  untilPlan,
} from "../lib/talosctl.ts";
import { tail } from "../lib/parse.ts";
import { readProgress } from "../lib/resume.ts";
import { readManifest } from "../lib/manifest.ts";
import { preflight } from "../lib/preflight.ts";
import { statusTable } from "./02_status.ts";

export const task: TaskDef = {
  name: "wipe",
  summary: "reset every control-plane node at once (EPHEMERAL): DESTROYS etcd everywhere",
  usage: "  deno task wipe --nodes A,B,C [--seed N] [--out DIR] [--yes] [--force] [--timeout 10m]",
  run: async (ctx) => {
    if (ctx.opts.dryRun) return printPlan(ctx, wipePlan(ctx));
    const progress = readProgress(ctx.opts.out);
    if (progress.resetSent.size > 0 && !progress.done.has("wipe") && !ctx.opts.force) {
      // A wipe an earlier run started: a rebooting node would fail the pre-flight.
      ctx.log.step(
        `Resuming from ${ctx.opts.out}/journal.jsonl: reset sent to ${
          [...progress.resetSent.keys()].join(", ")
        }, wipe not finished (--force starts over)`,
      );
      await confirm(
        ctx,
        `finish the wipe of ${ctx.opts.nodes.join(", ")}`,
        () => wipePlan(ctx),
      );
      await step(
        ctx,
        "wipe",
        `Finishing the wipe of ${ctx.opts.nodes.length} nodes`,
        () => finishWipe(ctx, progress.resetSent),
      );
      ctx.continueWith = taskCommand("bootstrap", ctx.opts, ["--yes"]);
      return;
    }
    refuseAfterBootstrap(ctx); // before the pre-flight asks the nodes anything
    await step(ctx, "preflight", "Pre-flight checks", () => preflight(ctx, "preflight"));
    const seed = await step(
      ctx,
      "safety",
      "Checking the copies before wiping",
      () => checkBeforeWipe(ctx),
    );
    await confirm(
      ctx,
      `wipe etcd on ${ctx.opts.nodes.join(", ")} (seed ${seed})`,
      () => wipePlan(ctx),
    );
    await step(ctx, "wipe", `Wiping ${ctx.opts.nodes.length} nodes at once`, () => wipe(ctx));
  },
};

/** Refuses (unless --force) to wipe once the journal records a bootstrap that succeeded. */
function refuseAfterBootstrap(ctx: Ctx): void {
  const done = readProgress(ctx.opts.out).done;
  if (!done.has("bootstrap")) return;
  const message = `${ctx.opts.out}/journal.jsonl records a bootstrap that succeeded (${
    done.get("bootstrap")
  }): wiping now destroys the restored etcd`;
  if (ctx.opts.force) {
    ctx.log.warn(`${message}; wiping anyway because of --force`);
    return;
  }
  // The recovery's own node list: a different one is refused by recover.
  const nodes = readManifest(ctx.opts.out)?.nodes ?? ctx.opts.nodes;
  throw new RefusedError(`Refusing to wipe: ${message}`, {
    hint: `continue with ${
      taskCommand("recover", { ...ctx.opts, nodes }, ["--yes"])
    } (it resumes); --force only to start over`,
  });
}

/**
 * The safety rules: an intact seed copy, every copy usable, the seed the highest revision,
 * the cluster not healthy. Returns the seed.
 */
export async function checkBeforeWipe(ctx: Ctx): Promise<string> {
  refuseAfterBootstrap(ctx);
  const insp = await inspectCopies(ctx);
  ctx.log.raw(statusTable(insp, ctx.opts.seed));
  const seed = resolveSeed(ctx, insp);
  checkEveryCopy(ctx, insp);
  ctx.log.ok(
    `seed ${seed}: copy intact, revision ${
      insp.rows.find((r) => r.node === seed)?.status?.revision
    }`,
  );
  const view = await askCluster(ctx, seed, "safety");
  const outside = membersOutside(view, ctx.opts.nodes);
  if (outside.length > 0) {
    const message = `etcd lists members that are not in --nodes: ${outside.join(", ")}`;
    if (!ctx.opts.force) {
      throw new RefusedError(
        `Refusing to wipe: ${message}; such a node would keep the old cluster, and its copy was not read`,
        {
          hint: "add the node to --nodes (and extract again), or --force if it is gone for good",
        },
      );
    }
    ctx.log.warn(`${message}; going on because of --force`);
  }
  if (view && !view.members) {
    ctx.log.warn(`could not list etcd members: not checked that --nodes names them all`);
  }
  const healthy = healthyEvidence(view, ctx.opts.nodes);
  if (healthy) {
    if (!ctx.opts.force) {
      throw new RefusedError(`Refusing to wipe a healthy cluster: ${healthy}`, {
        hint: "nothing to recover; pass --force only if you know etcd is broken anyway",
      });
    }
    ctx.log.warn(`the cluster looks healthy (${healthy}); wiping anyway because of --force`);
  }
  return seed;
}

/** Resets every node at once and waits until each came back with an empty etcd. */
export async function wipe(ctx: Ctx): Promise<void> {
  const nodes = ctx.opts.nodes;
  const sentAt = ctx.deps.now();
  ctx.clusterState = `reset sent to ${
    nodes.join(", ")
  }: etcd is being destroyed; the copies in ${ctx.opts.out} are the only data`;
  ctx.continueWith = taskCommand("wipe", ctx.opts, ["--yes"]);
  const results = await Promise.all(
    nodes.map((n) =>
      talos(ctx, n, sub.reset(ctx.wipeLabels.get(n)), { step: "wipe", mutating: true })
    ),
  );
  const failed = nodes.filter((_, i) => results[i].code !== 0);
  if (failed.length > 0) {
    const done = nodes.filter((n) => !failed.includes(n));
    ctx.clusterState = `reset accepted by ${done.join(", ") || "no node"}; FAILED on ${
      failed.join(", ")
    } (still holding the old etcd)`;
    throw new StepError(
      `Reset failed on ${
        failed.map((n) =>
          `"${n}": ${
            tail(results[nodes.indexOf(n)].stderr, 1) || `exit ${results[nodes.indexOf(n)].code}`
          }`
        ).join("; ")
      }`,
      {
        hint:
          "fix the failing node and run wipe again: resetting an already wiped node again is harmless",
      },
    );
  }
  await allWiped(ctx, nodes.map((node) => [node, () => awaitWiped(ctx, node, sentAt)]));
  ctx.clusterState = `every node wiped (${
    nodes.join(", ")
  }): etcd is empty and waiting for bootstrap; the copies in ${ctx.opts.out} are the only data`;
  ctx.continueWith = taskCommand("bootstrap", ctx.opts, ["--yes"]);
}

/**
 * Finishes a wipe an earlier run started (`sent`: node → when its reset was accepted): a node
 * whose etcd is Preparing is wiped (etcd waits for a bootstrap that has not happened); a node
 * that answers with etcd in any other state, or whose reset never went through, is reset now;
 * a node that does not answer is waited for, as it may still be rebooting.
 */
export async function finishWipe(ctx: Ctx, sent: ReadonlyMap<string, string>): Promise<void> {
  const nodes = ctx.opts.nodes;
  // Reset again with the labels the first reset had (the pre-flight that found a dedicated
  // ETCD partition does not run now).
  for (const [node, labels] of readProgress(ctx.opts.out).resetLabels) {
    if (!ctx.wipeLabels.has(node)) ctx.wipeLabels.set(node, labels);
  }
  const looks = await Promise.all(nodes.map((n) => lookAtEtcd(ctx, n, "wipe")));
  const again = nodes.filter((n, i) =>
    !sent.has(n) || (looks[i].kind === "up" && looks[i].info.state !== "Preparing")
  );
  nodes.forEach((n, i) => {
    const what = looks[i].kind === "up" && looks[i].info.state === "Preparing"
      ? "wiped (etcd Preparing)"
      : again.includes(n)
      ? `etcd ${describe(looks[i])}: resetting it again`
      : `${describe(looks[i])}: waiting for it to come back wiped`;
    ctx.log.info(`${n}: reset sent ${sent.get(n) ?? "never (it failed)"}; now ${what}`);
  });
  const sentAt = ctx.deps.now();
  const results = await Promise.all(
    again.map((n) =>
      talos(ctx, n, sub.reset(ctx.wipeLabels.get(n)), { step: "wipe", mutating: true })
    ),
  );
  const failed = again.filter((_, i) => results[i].code !== 0);
  if (failed.length > 0) {
    throw new StepError(
      `Reset failed again on ${failed.map((n) => `"${n}"`).join(", ")}: ${
        tail(results[again.indexOf(failed[0])].stderr, 1)
      }`,
      { hint: "fix the failing node, then run this again: resetting a wiped node is harmless" },
    );
  }
  const wiped = (i: number) => looks[i].kind === "up" && looks[i].info.state === "Preparing";
  await allWiped(
    ctx,
    nodes.map((node, i) => [
      node,
      // a node seen wiped just now is not waited for again
      () =>
        wiped(i) && !again.includes(node)
          ? Promise.resolve()
          : awaitWiped(ctx, node, sentAt, { resetEarlier: !again.includes(node) }),
    ]),
  );
  ctx.clusterState = `every node wiped (${
    nodes.join(", ")
  }): etcd is empty and waiting for bootstrap; the copies in ${ctx.opts.out} are the only data`;
}

/**
 * Runs every node's wait; when one fails, the cluster state names the nodes seen wiped and
 * those not (yet) seen wiped, rather than only that resets were sent.
 */
async function allWiped(ctx: Ctx, waits: [string, () => Promise<void>][]): Promise<void> {
  const seen: string[] = [];
  const results = await Promise.allSettled(waits.map(async ([node, wait]) => {
    await wait();
    seen.push(node);
  }));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (!failed) return;
  const notSeen = waits.map(([n]) => n).filter((n) => !seen.includes(n));
  ctx.clusterState = [
    `reset sent to every node`,
    seen.length > 0 ? `seen wiped (etcd Preparing): ${seen.join(", ")}` : "",
    `not seen wiped: ${notSeen.join(", ")}`,
    `the copies in ${ctx.opts.out} are the only data`,
  ].filter(Boolean).join("; ");
  throw failed.reason;
}

/**
 * Polls `node` until it went down and came back with etcd Preparing (empty, waiting). With
 * `resetEarlier` (a reset an earlier run sent), Preparing is enough: the reboot may be over.
 */
async function awaitWiped(
  ctx: Ctx,
  node: string,
  sentAt: number,
  options: { resetEarlier?: boolean } = {},
): Promise<void> {
  let wentDown = options.resetEarlier ?? false;
  await poll(ctx, {
    what: `"${node}" to reboot wiped (etcd Preparing)`,
    intervalMs: SERVICE_POLL_MS,
    timeoutMs: ctx.opts.timeoutMs,
    check: async () => {
      const look = await lookAtEtcd(ctx, node, "wipe");
      if (look.kind === "down") wentDown = true;
      const fresh = look.kind === "up" &&
        (wentDown || startedWithin(look.info, ctx.deps.now() - sentAt));
      if (look.kind === "up" && fresh && look.info.state === "Preparing") {
        return { done: true, value: undefined };
      }
      const note = look.kind === "up" && !fresh ? " — not rebooted yet" : "";
      return { done: false, state: `${node}: ${describe(look)}${note}` };
    },
  });
}

/** The commands wipe runs, as bash. */
export function wipePlan(ctx: Ctx): string[] {
  return [
    "# Step 3: wipe every node at once (DESTROYS etcd; the copies are the only data now)",
    "# (a node with a dedicated ETCD partition needs --system-labels-to-wipe ETCD as well)",
    ...parallelPlan(ctx.opts.nodes.map((n) => shellLine(talosArgv(ctx, n, sub.reset())))),
    "# then, for each node, until it came back with an empty etcd:",
    ...ctx.opts.nodes.map((n) =>
      untilPlan(
        serviceIsPlan(shellLine(talosArgv(ctx, n, sub.serviceEtcd())), "STATE", "Preparing"),
        `${n} to come back wiped (etcd Preparing)`,
        ctx.opts.timeoutMs / 1000,
      )
    ),
  ];
}

export function main(args: string[], deps?: Deps): Promise<number> {
  return runTask(task, args, deps);
}

if (import.meta.main) await mainEntry(task);
