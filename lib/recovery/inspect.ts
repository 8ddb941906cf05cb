/**
 * What the copies in OUT say, and the safety rules that depend on them: which node is the
 * seed, whether every copy is intact, whether a `--seed` is the best choice.
 */

import { join } from "node:path";
import type { Ctx } from "../run/context.ts";
import { InterruptedError, RefusedError } from "../run/errors.ts";
import { EtcdDbError } from "../db/etcd_db.ts";
import { existsSync, readdirSync } from "node:fs";
import {
  type CopyCheck,
  copyFile,
  type Manifest,
  MANIFEST_FILE,
  readManifest,
  verifyCopy,
  writeManifest,
} from "./manifest.ts";
import { SEED_VAR, shellLine } from "../run/command.ts";
import { pickSeed, type SeedChoice } from "../db/etcdutl.ts";
import { compareHistories, type CopyStatus, plannedRange, readCopy } from "./copies.ts";
import { type CopyComparison, describeRange, notComparable } from "../db/compare.ts";
import { isValidNode } from "../run/nodes.ts";
import { readProgress } from "./resume.ts";
import { humanizeBytes } from "../run/humanize.ts";

export interface CopyRow {
  node: string;
  file: string;
  intact: boolean;
  status?: CopyStatus;
  /** Why the copy cannot be used. */
  problem?: string;
  /**
   * How its sha256 was found to match the manifest: taken now, or not taken because the file
   * is unchanged since it was (the time it was taken). Absent without a match.
   */
  sha256Check?: { how: "hashed" } | { how: "unchanged"; hashedAt: string };
}

export interface Inspection {
  manifest: Manifest;
  rows: CopyRow[];
  choice?: SeedChoice;
  /** How the copies' key histories compare, or why they could not be. */
  comparison: CopyComparison;
}

/**
 * Reads the manifest and every copy. Refuses when there is nothing to read. With
 * `requireManifest: false` (status), copies put in OUT by hand (`OUT/db.N/db`, no manifest)
 * are read too, marked unverified: `extract` records them without copying again. With
 * `trustUnchanged` (the read-only looks: status, diagnose), a copy whose file is unchanged
 * since its sha256 was taken is not hashed again (`verifyCopy`), and a copy hashed now has its
 * file's identity recorded in the manifest for the next look; unless `--rehash`.
 */
export async function inspectCopies(
  ctx: Ctx,
  options: { requireManifest?: boolean; trustUnchanged?: boolean } = {},
): Promise<Inspection> {
  const { out } = ctx.opts;
  const manifest = readManifest(out);
  const handmade = manifest ? [] : copiesOnDisk(out);
  if (!manifest && (options.requireManifest !== false || handmade.length === 0)) {
    throw new RefusedError(
      `No recorded copies in "${out}": ${join(out, MANIFEST_FILE)} is missing`,
      {
        hint: handmade.length > 0
          ? `run deno task extract --nodes ${
            handmade.join(",")
          } --out ${out}: it records the copies found there (sha256) without copying again`
          : "run deno task extract first (or pass the --out of the extraction)",
      },
    );
  }
  const nodes = ctx.opts.nodes.length > 0 ? ctx.opts.nodes : manifest?.nodes ?? handmade;
  // Each copy's sha256 is checked while it is read (both go over every byte, on other threads):
  // a copy that fails its check is shown with that reason, whatever its reading gave.
  const trustUnchanged = options.trustUnchanged === true && !ctx.opts.rehash;
  const checks = nodes.map((node) => {
    const file = join(out, copyFile(node));
    const check = manifest
      ? verifyCopy(out, manifest, node, ctx.deps.db.sha256, { trustUnchanged })
      : Promise.resolve(
        existsSync(file) ? { ok: true as const } : { ok: false as const, reason: "no copy" },
      );
    check.catch(() => {}); // awaited below; an interrupt is thrown from there
    return { node, file, check };
  });
  // The range to compare is known from a few pages of each copy, so each is read whole once.
  // (the sha256 checks run meanwhile: the range is planned from every copy on disk)
  const range = await plannedRange(ctx, checks.filter((c) => existsSync(c.file)));
  const rows = await Promise.all(checks.map(async ({ node, file, check }): Promise<CopyRow> => {
    const verified = check.then((c) => c.ok);
    verified.catch(() => {}); // an interrupted check is thrown below, from `check`
    const reading = existsSync(file)
      ? readCopy(ctx, node, file, range, verified)
        .then((status) => ({ status }), (error) => ({ error }))
      : undefined;
    const checked = await check;
    const read = await reading;
    // Ctrl-C: not a fact about the copy
    if (read && "error" in read && read.error instanceof InterruptedError) throw read.error;
    if (!checked.ok || !read) {
      return { node, file, intact: false, problem: checked.ok ? "no copy" : checked.reason };
    }
    const how = "how" in checked ? checked.how : undefined;
    const sha256Check = how === "unchanged"
      ? { how: "unchanged" as const, hashedAt: manifest!.copies[node].hashed!.hashedAt }
      : how === "hashed"
      ? { how: "hashed" as const }
      : undefined;
    if ("status" in read) {
      return { node, file, intact: true, status: read.status, ...(sha256Check && { sha256Check }) };
    }
    const error = read.error;
    // Not intact when the reader refuses the file itself (cut short, damaged); etcdutl
    // failing on a file the reader checked whole makes it unusable, not damaged.
    const intact = !(error instanceof EtcdDbError);
    return { node, file, intact, problem: (error as Error).message };
  }));
  if (!manifest) {
    ctx.log.warn(
      `no ${MANIFEST_FILE} in ${out}: the copies are read but not verified (no sha256 recorded)`,
    );
  } else {
    await noteHashing(ctx, manifest, checks, trustUnchanged);
  }
  const readable = rows.filter((r) => r.status).map((r) => ({
    node: r.node,
    revision: r.status!.revision,
  }));
  const readableRows = rows.flatMap((r) =>
    r.status ? [{ node: r.node, file: r.file, status: r.status }] : []
  );
  const missing = rows.filter((r) => !r.status).map((r) => ({
    node: r.node,
    reason: `no usable copy (${r.problem})`,
  }));
  const comparison = await compareHistories(ctx, readableRows, missing).catch((error) => {
    if (error instanceof InterruptedError) throw error;
    return notComparable(
      `the histories could not be hashed: ${(error as Error).message}`,
      readable,
      missing,
    );
  });
  const inspection: Inspection = {
    manifest: manifest ?? { version: 1 as const, nodes, copies: {}, failures: {} },
    rows,
    choice: pickSeed(readable, nodes),
    comparison,
  };
  reportAgreement(ctx, inspection);
  ctx.journal.record({
    type: "fact",
    key: "copies",
    value: rows.map((r) => ({
      node: r.node,
      revision: r.status?.revision,
      totalKey: r.status?.totalKey,
      alarms: r.status?.alarms.map((a) => a.type),
      agrees: agreement(inspection, r.node),
      notCompared: notComparedReason(inspection, r.node),
      intact: r.intact,
      error: r.problem,
    })),
  });
  return inspection;
}

/**
 * The seed to restore from: `--seed` when given (refused without `--force` when another copy
 * has a higher revision), else the highest revision. Refuses when the seed's copy is not
 * intact and readable: that is never overridable.
 */
export function resolveSeed(ctx: Ctx, insp: Inspection): string {
  const best = insp.choice;
  if (!best) {
    throw new RefusedError("No readable copy: cannot choose a seed", {
      hint: "see the problems listed above; extract again into a new --out",
    });
  }
  const seed = ctx.opts.seed ?? best.seed;
  const row = insp.rows.find((r) => r.node === seed);
  if (!row || !row.status) {
    throw new RefusedError(
      `Cannot use seed "${seed}": its copy is not usable (${row?.problem ?? "no copy"})`,
      { hint: `the best copy is "${best.seed}" at revision ${best.revision}` },
    );
  }
  const majorityChoice = insp.comparison?.highestDisagrees &&
    insp.comparison.majorityPick?.node === seed;
  if (row.status.revision < best.revision && !majorityChoice) {
    const message =
      `Seed "${seed}" has revision ${row.status.revision}, but "${best.seed}" has ${best.revision}`;
    if (!ctx.opts.force) {
      throw new RefusedError(`${message}: restoring it would lose the newer writes`, {
        hint: `use --seed ${best.seed}, or pass --force to restore the older copy anyway`,
      });
    }
    ctx.log.warn(`${message}; going on because of --force`);
  }
  const cmp = insp.comparison;
  if (cmp?.highestDisagrees && cmp.majorityPick && seed !== cmp.majorityPick.node) {
    const message = `The copy of "${seed}" disagrees with the majority (${
      cmp.majority!.nodes.join(", ")
    }) on the history they all hold (${describeRange(cmp.range!)})`;
    if (!ctx.opts.force) {
      throw new RefusedError(`${message}: it may be the member that diverged`, {
        hint:
          `the majority points to "${cmp.majorityPick.node}" (revision ${cmp.majorityPick.revision}): use --seed ${cmp.majorityPick.node}, or --force to restore "${seed}" anyway`,
      });
    }
    ctx.log.warn(`${message}; going on because of --force`);
  }
  if (best.ties.length > 0 && !ctx.opts.seed) {
    ctx.log.info(
      `revision ${best.revision} is also held by ${
        best.ties.join(", ")
      }; using "${seed}" (of those, the first in --nodes)`,
    );
  }
  ctx.journal.record({ type: "fact", key: "seed", value: seed });
  return seed;
}

/**
 * Refuses to wipe while any node's copy is missing or unreadable, or while the copies' histories
 * were not shown to agree (not compared, or no majority), unless --force.
 */
export function checkEveryCopy(ctx: Ctx, insp: Inspection): void {
  const bad = insp.rows.filter((r) => !r.status);
  if (bad.length === 0) return checkAgreement(ctx, insp);
  const list = bad.map((r) => `"${r.node}" (${r.problem})`).join(", ");
  const missing = bad.some((r) => !existsSync(r.file));
  const unusable = bad.some((r) => existsSync(r.file));
  const how = [
    missing ? "run extract again with the same --out for a missing copy" : "",
    unusable ? "extract into a new --out for a copy that cannot be used (none is overwritten)" : "",
  ].filter(Boolean).join("; ");
  if (!ctx.opts.force) {
    throw new RefusedError(
      `Refusing to wipe: no usable copy from ${list}; ${
        bad.length > 1 ? "those nodes" : "that node"
      } might hold the newest data`,
      { hint: `${how}; or pass --force to go on without ${bad.length > 1 ? "them" : "it"}` },
    );
  }
  ctx.log.warn(`going on without a usable copy from ${list} because of --force`);
  checkAgreement(ctx, insp);
}

/**
 * The comparison part of the safety check: "not compared" counts like "disagrees". Refused
 * (unless --force) when no two copies could be compared, or when no group of agreeing copies
 * holds more than half of the nodes (a split, or too many copies not compared). A seed outside
 * the majority is refused by `resolveSeed`. Copies outside a majority that holds the seed are
 * named, not refused: the wipe replaces them with the seed's history.
 */
function checkAgreement(ctx: Ctx, insp: Inspection): void {
  const cmp = insp.comparison;
  const unchecked = cmp.notCompared.map((n) => `"${n.node}" (${n.reason})`).join(", ");
  let problem: string | undefined;
  if (insp.rows.length === 1 && insp.rows[0].status) {
    // a one-node control plane: its copy is the whole history, there is no other to disagree
    ctx.log.info(
      `one control-plane node: its copy is the only history, nothing to compare it with`,
    );
    return;
  }
  if (cmp.unavailable) {
    problem = `the copies' histories were not compared: ${cmp.unavailable}`;
  } else if (!cmp.majority) {
    problem = `no majority of the ${insp.rows.length} copies agrees on ${
      describeRange(cmp.range!)
    }: ${cmp.groups.map((g) => g.nodes.join("+")).join(" vs ")}${
      unchecked ? `; not compared: ${unchecked}` : ""
    }`;
  }
  if (!problem) {
    if (cmp.notCompared.length > 0) {
      ctx.log.warn(`not compared with the others: ${unchecked}`);
    }
    return;
  }
  if (!ctx.opts.force) {
    throw new RefusedError(
      `Refusing to wipe: ${problem}; nothing shows the seed's copy holds the cluster's history`,
      {
        hint: cmp.unavailable
          ? "pass --force to restore the seed unchecked"
          : "pass --seed N --force to restore the copy you trust",
      },
    );
  }
  ctx.log.warn(`${problem}; going on because of --force`);
}

/**
 * The seed for steps 4-8: the one earlier steps recorded in OUT/journal.jsonl (a different
 * `--seed` is refused without --force: rebooting or disarming the wrong node breaks the restored
 * cluster), else `--seed` or the highest revision, under the same rules as wipe. Without
 * copies in OUT (a step run on its own) `--seed` is taken as given, unless `strict`.
 */
export async function seedOf(ctx: Ctx, options: { strict?: boolean } = {}): Promise<string> {
  const recorded = readProgress(ctx.opts.out).seed;
  if (
    !recorded && ctx.opts.seed && !options.strict &&
    !existsSync(join(ctx.opts.out, MANIFEST_FILE))
  ) {
    return ctx.opts.seed; // no copies to check it against: the operator's word
  }
  if (recorded && (!ctx.opts.seed || ctx.opts.seed === recorded)) {
    ctx.log.info(`seed: ${recorded} (recorded in ${join(ctx.opts.out, "journal.jsonl")})`);
    return recorded;
  }
  if (recorded && !ctx.opts.force) {
    throw new RefusedError(
      `--seed ${ctx.opts.seed} differs from the seed the earlier steps used, ${recorded} (recorded in ${
        join(ctx.opts.out, "journal.jsonl")
      })`,
      { hint: `use --seed ${recorded} (or leave it out); --force to use ${ctx.opts.seed} anyway` },
    );
  }
  const seed = resolveSeed(ctx, await inspectCopies(ctx));
  if (!ctx.opts.seed) {
    ctx.log.info(`seed: ${seed} (highest revision in ${ctx.opts.out}; pass --seed to name it)`);
  }
  return seed;
}

/** The plan's way to name the seed: `--seed`, or a shell variable filled by `status`. */
export function planSeed(ctx: Ctx): { seed: string; lines: string[] } {
  if (ctx.opts.seed) return { seed: ctx.opts.seed, lines: [] };
  const args = [
    "--out",
    ctx.opts.out,
    ...(ctx.opts.nodes.length ? ["--nodes", ctx.opts.nodes.join(",")] : []),
  ];
  return {
    seed: SEED_VAR,
    lines: [`SEED=$(deno task status ${shellLine(args)})  # highest revision`],
  };
}

/** Nodes with a copy at `OUT/db.N/db`, found by listing OUT. */
function copiesOnDisk(out: string): string[] {
  if (!existsSync(out)) return [];
  return readdirSync(out).filter((name) => name.startsWith("db.") && !name.endsWith(".partial"))
    .map((name) => name.slice(3))
    .filter((node) => isValidNode(node) && existsSync(join(out, copyFile(node))));
}

/**
 * "yes" (in the majority, or every compared copy agrees), "no", "split" (no majority), or "-"
 * (not compared: {@linkcode notComparedReason} says why) for `node`.
 */
export function agreement(insp: Inspection, node: string): string {
  const cmp = insp.comparison;
  if (notComparedReason(insp, node) !== undefined || !cmp.range) return "-";
  if (cmp.majority) return cmp.majority.nodes.includes(node) ? "yes" : "no";
  return cmp.groups.length === 1 ? "yes" : "split";
}

/** Why `node`'s copy was not compared, or undefined when it was. */
export function notComparedReason(insp: Inspection, node: string): string | undefined {
  return insp.comparison.notCompared.find((n) => n.node === node)?.reason;
}

function reportAgreement(ctx: Ctx, insp: Inspection): void {
  const cmp = insp.comparison;
  if (cmp.unavailable) {
    ctx.log.warn(`the copies' histories were NOT compared: ${cmp.unavailable}`);
    return;
  }
  const range = describeRange(cmp.range!);
  const unchecked = cmp.notCompared.filter((n) => insp.rows.find((r) => r.node === n.node)?.status)
    .map((n) => `"${n.node}" (${n.reason})`);
  if (unchecked.length > 0) ctx.log.warn(`NOT compared: ${unchecked.join(", ")}`);
  const others = cmp.outside.filter((n) => n !== cmp.highest?.node).map((n) => `"${n}"`);
  if (cmp.allAgree) {
    ctx.log.ok(`every copy agrees on the history they all hold (${range})`);
  } else if (cmp.highestDisagrees) {
    ctx.log.warn(
      `the highest-revision copy ("${cmp.highest!.node}") DISAGREES with the majority (${
        cmp.majority!.nodes.join(", ")
      }) on ${range}; the majority points to "${cmp.majorityPick?.node}"${
        others.length > 0
          ? ` (${others.join(", ")} ${others.length > 1 ? "disagree" : "disagrees"} too)`
          : ""
      }`,
    );
  } else if (cmp.majority && cmp.outside.length === 0) {
    ctx.log.ok(
      `the compared copies agree on ${range} (${cmp.majority.nodes.join(", ")}); ` +
        `the majority points to "${cmp.majorityPick?.node}"`,
    );
  } else if (cmp.majority) {
    ctx.log.warn(
      `${cmp.outside.map((n) => `"${n}"`).join(", ")} ${
        cmp.outside.length > 1 ? "disagree" : "disagrees"
      } with the majority (${cmp.majority.nodes.join(", ")}) on ${range}; ` +
        `the majority points to "${cmp.majorityPick?.node}"`,
    );
  } else if (cmp.groups.length === 1) {
    ctx.log.warn(
      `the compared copies agree on ${range} (${cmp.groups[0].nodes.join(", ")}), but they ` +
        `are not a majority of the ${insp.rows.length} nodes`,
    );
  } else {
    ctx.log.warn(
      `no majority: the copies do not agree on ${range}: ${
        cmp.groups.map((g) => g.nodes.join("+")).join(" vs ")
      }`,
    );
  }
}

/** The seed's copy, after checking it is still byte-for-byte what was extracted. */
export async function verifiedSeedCopy(ctx: Ctx, seed: string): Promise<string> {
  const check = await verifyCopy(ctx.opts.out, readManifest(ctx.opts.out), seed);
  if (!check.ok) {
    throw new RefusedError(`Cannot restore from the copy of "${seed}": ${check.reason}`, {
      hint: `the copy is ${
        join(ctx.opts.out, copyFile(seed))
      }; extract it again if the node still has it`,
    });
  }
  return join(ctx.opts.out, copyFile(seed));
}

/**
 * Says which copies' sha256 was taken again and which were not (unchanged since it was, with
 * when), and, for the read-only looks, records the identity of the files hashed now.
 */
async function noteHashing(
  ctx: Ctx,
  manifest: Manifest,
  checks: { node: string; check: Promise<CopyCheck> }[],
  record: boolean,
): Promise<void> {
  const done = await Promise.all(checks.map(async (c) => ({ node: c.node, check: await c.check })));
  const how = (d: (typeof done)[number]) => d.check.ok ? d.check.how : undefined;
  const unchanged = done.filter((d) => how(d) === "unchanged");
  if (unchanged.length > 0) {
    const when = [
      ...new Set(unchanged.map((d) => `${manifest.copies[d.node].hashed!.hashedAt.slice(0, 19)}Z`)),
    ].join(", ");
    ctx.log.info(
      `sha256 not taken again for ${unchanged.map((d) => d.node).join(", ")}: ` +
        `file unchanged since it was hashed (${when}: same inode, size, mtime, ctime); ` +
        `--rehash to hash again`,
    );
  }
  const moved = done.filter((d) => how(d) === "hashed" && manifest.copies[d.node]?.hashed);
  if (record && moved.length > 0) {
    ctx.log.info(
      `sha256 taken again for ${moved.map((d) => d.node).join(", ")}: ` +
        `the file's inode, size, mtime or ctime changed since it was hashed (copied, touched)`,
    );
  }
  if (!record) return;
  const identities = done.flatMap((d) =>
    d.check.ok && d.check.identity ? [{ node: d.node, identity: d.check.identity }] : []
  );
  if (identities.length === 0) return;
  // Only the identities go in, into the manifest as it is now: another run (extract) may have
  // recorded a copy since this one read it; a record that changed meanwhile is left alone.
  const now = readManifest(ctx.opts.out);
  if (!now) return;
  let changed = false;
  for (const { node, identity } of identities) {
    const mine = manifest.copies[node];
    const theirs = now.copies[node];
    if (!mine || !theirs || theirs.sha256 !== mine.sha256 || theirs.file !== mine.file) continue;
    if (theirs.size !== mine.size) continue;
    theirs.hashed = identity;
    changed = true;
  }
  if (changed) writeManifest(ctx.opts.out, now);
}

/**
 * The table for people; `seed` (default: the highest revision; null: none) is marked in NOTE.
 */
export function statusTable(
  insp: Inspection,
  seed: string | null | undefined = insp.choice?.seed,
): string {
  // HASH (etcdctl's) only when it was computed (status --etcd-hash): nothing is decided on it
  const hashed = insp.rows.some((r) => typeof r.status?.hash === "number");
  const header = ["NODE", "REVISION", "KEYS", "SIZE", "HASH", "ALARMS", "INTACT", "AGREES", "NOTE"]
    .filter((h) => hashed || h !== "HASH");
  const rows = insp.rows.map((r) => [
    r.node,
    r.status ? String(r.status.revision) : "-",
    r.status ? String(r.status.totalKey) : "-",
    r.status ? humanizeBytes(r.status.totalSize) : "-",
    ...(hashed ? [r.status?.hash != null ? r.status.hash.toString(16).padStart(8, "0") : "-"] : []),
    r.status ? [...new Set(r.status.alarms.map((a) => a.type))].join(",") || "-" : "-",
    !r.intact ? "no" : insp.manifest.copies[r.node] ? "yes" : "unverified",
    agreement(insp, r.node),
    r.problem ??
      [
        r.node === seed ? "seed" : "",
        notComparedReason(insp, r.node) ? `not compared: ${notComparedReason(insp, r.node)}` : "",
        r.status?.crossCheck ?? "",
      ].filter(Boolean).join("; "),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [header, ...rows].map((cells) =>
    cells.map((c, i) => c.padEnd(widths[i])).join("   ").trimEnd()
  ).join("\n");
}
