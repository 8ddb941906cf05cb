/**
 * The extraction's mechanics (tasks/01_extract.ts tells the story): one node's copy (an intact
 * earlier copy kept, a torn one copied again once and set aside), reading each copy back whole
 * with the native reader, recording it in the manifest, and the failure an incomplete
 * extraction ends with.
 */

import { chmodSync, existsSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Ctx } from "../run/context.ts";
import { InterruptedError, StepError } from "../run/errors.ts";
import { EtcdDbError, summarize } from "../db/etcd_db.ts";
import { humanizeBytes } from "../run/humanize.ts";
import {
  copyDir,
  copyFile,
  fileTimes,
  hashWithIdentity,
  type Manifest,
  settlesAt,
  verifyCopy,
  writeManifest,
} from "./manifest.ts";
import { formatMs, pause } from "../run/poll.ts";
import { tail } from "../run/command.ts";
import { COPY_TIMEOUT_MS, sub, talos } from "../talos/talosctl.ts";

export interface Extraction {
  manifest: Manifest;
  /** Copies made (and recorded) that the native reader refuses, with why. */
  damaged: Record<string, string>;
}

/**
 * Fails the step naming every node without a copy and every copy that is not a readable etcd
 * db, with what to do next.
 */
export function failUnlessComplete(ctx: Ctx, { manifest, damaged }: Extraction): void {
  const failed = Object.keys(manifest.failures);
  const torn = Object.keys(damaged);
  if (failed.length > 0 || torn.length > 0) {
    const n = ctx.opts.nodes.length;
    const names = (nodes: string[]) => nodes.map((x) => `"${x}"`).join(", ");
    const what = [
      ...(failed.length > 0 ? [`no copy from ${names(failed)}`] : []),
      ...(torn.length > 0 ? [`the copy from ${names(torn)} is not a readable etcd db`] : []),
    ];
    const next = [
      ...(failed.length > 0
        ? ["fix the node's reachability and run extract again (done copies are kept)"]
        : []),
      ...(torn.length > 0
        ? [
          "a node whose copy is torn may have a damaged db itself: extract into a new --out to " +
          "copy it again; wipe and recover refuse without --force while a node has no usable copy",
        ]
        : []),
    ];
    throw new StepError(`Copied ${n - failed.length} of ${n} nodes; ${what.join("; ")}`, {
      hint: next.join("; "),
    });
  }
}

/** Copies `node`'s db into OUT (or keeps its intact earlier copy) and reads it back. */
export async function extractOne(ctx: Ctx, extraction: Extraction, node: string): Promise<void> {
  const { out } = ctx.opts;
  const { manifest } = extraction;
  const dir = join(out, copyDir(node));
  const file = join(out, copyFile(node));
  delete manifest.failures[node];
  if (manifest.copies[node]) {
    const check = await verifyCopy(out, manifest, node);
    const unreadable = manifest.copies[node].unreadable;
    if (check.ok && unreadable) {
      // Recorded torn by an earlier run: a re-run must not pass it off as fine.
      extraction.damaged[node] = unreadable;
      ctx.log.error(
        `${node}: already copied (${file}, sha256 matches), but not a readable etcd db: ${unreadable}`,
      );
      return;
    }
    if (check.ok) return ctx.log.ok(`${node}: already copied (${file}, sha256 matches)`);
    // the manifest keeps the original record, so this copy can never pass as intact
    manifest.failures[node] = `earlier copy ${file} changed since extraction (${check.reason})`;
    ctx.log.error(`${node}: ${manifest.failures[node]}; not overwriting it`);
    return;
  }
  if (existsSync(file)) {
    ctx.log.warn(`${node}: ${file} exists but is not in the manifest; keeping it as the copy`);
    return record(ctx, extraction, node, file, await readBack(ctx, node, file));
  }
  if (existsSync(dir)) {
    manifest.failures[node] = `${dir} exists but holds no db file`;
    ctx.log.error(`${node}: ${manifest.failures[node]}; move it aside`);
    return;
  }
  const partial = `${dir}.partial`;
  /** A torn earlier attempt, set aside until a later one is recorded. */
  let aside: string | undefined;
  for (let attempt = 1;; attempt++) {
    rmSync(partial, { recursive: true, force: true }); // an interrupted earlier copy
    ctx.log.info(`${node}: copying…`);
    const r = await talos(ctx, node, sub.copyDb(partial), {
      step: "extract",
      echo: true,
      timeoutMs: COPY_TIMEOUT_MS,
    });
    if (
      r.code !== 0 || !existsSync(join(partial, "db")) || statSync(join(partial, "db")).size === 0
    ) {
      rmSync(partial, { recursive: true, force: true });
      manifest.failures[node] = r.code !== 0
        ? tail(r.stderr, 2) || `exit ${r.code}`
        : "talosctl cp exited 0 but wrote no db file";
      ctx.log.error(`${node}: copy failed: ${manifest.failures[node]}`);
      if (aside) ctx.log.warn(`${node}: the torn earlier copy is kept in ${aside}`);
      return;
    }
    // Private at once, and before it is hashed: a chmod later would change the file's change
    // time after the sha256 was taken (see hashWithIdentity).
    chmodSync(join(partial, "db"), 0o600);
    // A copy taken while etcd writes, or cut off, can be torn although cp exited 0: read it
    // whole now, while copying again is cheap, rather than find out at the wipe.
    const check = await readBack(ctx, node, join(partial, "db"));
    if ("torn" in check && attempt < COPY_ATTEMPTS) {
      aside = setAside(partial, dir);
      ctx.log.warn(
        `${node}: the copy is not a readable etcd db (${check.torn}); kept in ${aside}, copying again`,
      );
      continue;
    }
    renameSync(partial, dir);
    await record(ctx, extraction, node, file, check, r.durationMs);
    // A later copy is recorded (whole, or torn again and kept): the earlier one adds nothing.
    if (aside) rmSync(aside, { recursive: true, force: true });
    return;
  }
}

/** Copies of one node made before a torn copy is kept as it is. */
const COPY_ATTEMPTS = 2;

/** Moves a torn attempt to the first free `DIR.torn-N`, never over anything. */
function setAside(partial: string, dir: string): string {
  let n = 1;
  while (existsSync(`${dir}.torn-${n}`)) n++;
  renameSync(partial, `${dir}.torn-${n}`);
  return `${dir}.torn-${n}`;
}

/**
 * What reading a copy back found: its revision; `torn` when the reader refuses the file (cut
 * short, damaged: copying again may help); `unread` when the file could not be read at all.
 */
type ReadBack = { revision: number } | { torn: string } | { unread: string };

/** Reads a copy whole with the native reader (never printing its contents). */
function readBack(ctx: Ctx, node: string, file: string): Promise<ReadBack> {
  ctx.log.info(`${node}: reading the copy back (${humanizeBytes(statSync(file).size)})…`);
  return ctx.deps.db.status(file).then(
    (db) => ({ revision: db.revision }),
    (error) => {
      if (error instanceof InterruptedError) throw error;
      return error instanceof EtcdDbError
        ? { torn: summarize(error.problems) }
        : { unread: (error as Error).message ?? String(error) };
    },
  );
}

async function record(
  ctx: Ctx,
  { manifest, damaged }: Extraction,
  node: string,
  file: string,
  check: ReadBack,
  durationMs?: number,
): Promise<void> {
  const copiedAt = new Date(ctx.deps.now()).toISOString(); // before the hashing, which follows it
  chmodSync(join(file, ".."), 0o700);
  // a chmod changes the change time even when the mode stays: only when needed
  if ((statSync(file).mode & 0o777) !== 0o600) chmodSync(file, 0o600);
  const size = statSync(file).size;
  // A copy changed less than a second ago cannot yet be vouched for by its times (see
  // hashWithIdentity): wait that long once, so status need not hash it again.
  const times = fileTimes(file);
  const wait = times ? settlesAt(times) - Date.now() : 0;
  if (wait > 0 && wait <= 1200) await pause(ctx, wait);
  const { sha256, hashed } = await hashWithIdentity(file);
  manifest.copies[node] = {
    file: copyFile(node),
    size,
    sha256,
    copiedAt,
    ...("torn" in check ? { unreadable: check.torn } : {}),
    ...(hashed ? { hashed } : {}),
  };
  writeManifest(ctx.opts.out, manifest);
  const took = durationMs !== undefined ? ` in ${formatMs(durationMs)}` : "";
  const what = `${node}: ${file} ${humanizeBytes(size)}${took}`;
  const sha = `sha256 ${manifest.copies[node].sha256.slice(0, 12)}…`;
  if ("torn" in check) {
    // Kept: it is what the node gave; a re-run, status, wipe and recover name it again.
    damaged[node] = check.torn;
    ctx.log.error(`${what}, ${sha}, is not a readable etcd db: ${check.torn}`);
  } else if ("unread" in check) {
    ctx.log.warn(`${what}, ${sha}; could not read it back: ${check.unread}`);
  } else {
    ctx.log.ok(`${what}, revision ${check.revision}, ${sha}`);
  }
}
