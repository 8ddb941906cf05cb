/**
 * The wipe's mechanics (tasks/03_wipe.ts tells the story): the safety rules before it, the
 * concurrent reset with its failure state, the wait until each node came back wiped, and
 * finishing a wipe an earlier run started.
 */

import { type Ctx, step } from "../run/context.ts";
import { RefusedError, StepError } from "../run/errors.ts";
import {
  checkEveryCopy,
  inspectCopies,
  type Inspection,
  resolveSeed,
  statusTable,
  verifiedSeedCopy,
} from "./inspect.ts";
import { taskCommand } from "./main.ts";
import { confirm } from "./confirm.ts";
import {
  askCluster,
  type ClusterView,
  describe,
  healthyEvidence,
  lookAtEtcd,
  membersOutside,
  SERVICE_POLL_MS,
  startedWithin,
} from "../talos/cluster.ts";
import { poll } from "../run/poll.ts";
import { sub, talos } from "../talos/talosctl.ts";
import { tail } from "../run/command.ts";
import { type Progress, resumedSeed, unfinishedWipe } from "./resume.ts";
import { refuseAfterBootstrap, wipeStep } from "./phase.ts";

/**
 * A re-run of the wipe step after resets an earlier run sent (a rebooting node would fail the
 * pre-flight): checks the seed's copy, asks, and finishes the wipe (`plan` is the step's bash).
 */
export async function resumeWipeStep(
  ctx: Ctx,
  progress: Progress,
  plan: () => string[],
): Promise<void> {
  const found = unfinishedWipe(progress);
  const { seed } = await checkBeforeFinishing(ctx, progress, found);
  ctx.opts.seed = seed;
  ctx.log.step(`Resuming from ${ctx.opts.out}/journal.jsonl: ${found} (--force starts over)`);
  ctx.continueWith = taskCommand("wipe", ctx.opts, ["--yes"]);
  await confirm(ctx, `finish the wipe of ${ctx.opts.nodes.join(", ")}`, plan);
  await step(
    ctx,
    "wipe",
    `Finishing the wipe of ${ctx.opts.nodes.length} nodes`,
    () => finishWipe(ctx, progress),
  );
  ctx.continueWith = taskCommand("bootstrap", ctx.opts, ["--yes"]);
}

/**
 * The safety rules: an intact seed copy, every copy usable, the seed the highest revision,
 * the cluster not healthy. Returns the seed.
 */
export async function checkBeforeWipe(
  ctx: Ctx,
  /** What recover has looked at already (the copies, the cluster): not asked again. */
  looked?: { insp: Inspection; view: ClusterView },
): Promise<string> {
  refuseAfterBootstrap(ctx);
  const insp = looked?.insp ?? await inspectCopies(ctx);
  if (!looked) ctx.log.raw(statusTable(insp, ctx.opts.seed));
  const seed = resolveSeed(ctx, insp);
  checkEveryCopy(ctx, insp);
  ctx.log.ok(
    `seed ${seed}: copy intact, revision ${
      insp.rows.find((r) => r.node === seed)?.status?.revision
    }`,
  );
  const view = looked?.view ?? await askCluster(ctx, seed, "safety");
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
  // recover's triage has judged health from every node already (a crash-looping member is
  // still listed as a voter): only a wipe on its own asks here
  const healthy = looked ? undefined : healthyEvidence(view, ctx.opts.nodes);
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

/**
 * Before finishing a wipe an earlier run started (`found` says what the journal holds): the
 * node list of the recovery, and the seed the earlier run chose with its copy still intact.
 * Returns the seed and its copy.
 */
export async function checkBeforeFinishing(
  ctx: Ctx,
  progress: Progress,
  found: string,
): Promise<{ seed: string; file: string }> {
  const seed = resumedSeed(ctx, progress, found);
  return { seed, file: await verifiedSeedCopy(ctx, seed) };
}

/**
 * Finishes a wipe an earlier run started. For each node, by what it answers now and when its
 * reset was accepted (the journal):
 * - etcd Preparing and started after the reset: wiped;
 * - down, or booting since the reset: waited for until it is Preparing;
 * - answering with an etcd that has not restarted since the reset (the reset did not take), or
 *   no reset accepted at all: reset now;
 * - etcd Running and started after the reset: bootstrapped or joined since, outside this
 *   journal: refused before anything is sent.
 */
export async function finishWipe(ctx: Ctx, progress: Progress): Promise<void> {
  const nodes = ctx.opts.nodes;
  const sent = progress.resetSent;
  // The labels of the first reset (the pre-flight that finds an ETCD partition does not run).
  for (const [node, labels] of progress.resetLabels) {
    if (!ctx.wipeLabels.has(node)) ctx.wipeLabels.set(node, labels);
  }
  ctx.clusterState = `reset sent earlier to ${
    [...sent.keys()].join(", ")
  }: etcd is being destroyed; the copies in ${ctx.opts.out} are the only data`;
  const now = ctx.deps.now();
  const looks = await Promise.all(nodes.map((n) => lookAtEtcd(ctx, n, "wipe")));
  const plans = nodes.map((node, i) => wipeStep(node, sent.get(node), looks[i], now));
  const running = plans.filter((p) => p.plan === "runs");
  if (running.length > 0) {
    throw new RefusedError(
      `etcd runs on ${
        running.map((p) => `"${p.node}"`).join(", ")
      } and started after its reset: bootstrapped or joined since, which this journal does not record`,
      {
        hint: `if the restore went through, continue with ${
          taskCommand("disarm", ctx.opts, ["--yes"])
        } and rejoin; to wipe again, pass --force`,
      },
    );
  }
  for (const p of plans) {
    const what = p.plan === "wiped"
      ? "wiped"
      : p.plan === "reset"
      ? "resetting it (again)"
      : "waiting for it to come back wiped";
    ctx.log.info(`${p.node}: reset sent ${sent.get(p.node) ?? "never"}; ${p.why}: ${what}`);
  }
  const again = plans.filter((p) => p.plan === "reset").map((p) => p.node);
  const sentAt = ctx.deps.now();
  await sendResets(
    ctx,
    again,
    (failed) =>
      `reset sent earlier to ${[...sent.keys()].join(", ")}; sent again to ${
        again.join(", ")
      } and FAILED on ${failed.join(", ")} (still holding the old etcd)`,
  );
  await allWiped(
    ctx,
    plans.filter((p) => p.plan !== "wiped").map((p) => [
      p.node,
      () => awaitWiped(ctx, p.node, p.plan === "reset" ? sentAt : Date.parse(p.at)),
    ]),
    plans.filter((p) => p.plan === "wiped").map((p) => p.node),
  );
  ctx.clusterState = everyNodeWiped(ctx);
}

/**
 * Resets `nodes` at once, each with its labels; when any reset is refused, the cluster state
 * becomes `failedState(failed)` and the step fails naming each failed node and why.
 */
export async function sendResets(
  ctx: Ctx,
  nodes: string[],
  failedState: (failed: string[]) => string,
): Promise<void> {
  const results = await Promise.all(
    nodes.map((n) =>
      talos(ctx, n, sub.reset(ctx.wipeLabels.get(n)), { step: "wipe", mutating: true })
    ),
  );
  const failed = nodes.filter((_, i) => results[i].code !== 0);
  if (failed.length === 0) return;
  ctx.clusterState = failedState(failed);
  const why = (n: string) => {
    const r = results[nodes.indexOf(n)];
    return tail(r.stderr, 1) || `exit ${r.code}`;
  };
  throw new StepError(
    `Reset failed on ${failed.map((n) => `"${n}": ${why(n)}`).join("; ")}`,
    {
      hint: "fix the failing node and run this again: resetting an already wiped node is harmless",
    },
  );
}

export function everyNodeWiped(ctx: Ctx): string {
  return `every node wiped (${
    ctx.opts.nodes.join(", ")
  }): etcd is empty and waiting for bootstrap; the copies in ${ctx.opts.out} are the only data`;
}

/**
 * Runs every node's wait; when one fails, the cluster state names the nodes seen wiped and
 * those not (yet) seen wiped, rather than only that resets were sent.
 */
export async function allWiped(
  ctx: Ctx,
  waits: [string, () => Promise<void>][],
  seenAlready: string[] = [],
): Promise<void> {
  const seen: string[] = [...seenAlready];
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
 * Polls `node` until it went down, or its etcd started after `sentAt` (its reset), and it is
 * back with etcd Preparing (empty, waiting).
 */
export async function awaitWiped(ctx: Ctx, node: string, sentAt: number): Promise<void> {
  let wentDown = false;
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
