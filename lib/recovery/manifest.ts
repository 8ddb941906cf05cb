/**
 * `OUT/manifest.json`: what was copied from which node, with size and sha256, so that no
 * step ever trusts a copy whose bytes changed since extraction. Copies live at
 * `OUT/db.<node>/db` (talosctl `cp` always writes into a directory).
 */

import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { InterruptedError, RefusedError } from "../run/errors.ts";
import { ensurePrivateDir } from "../run/journal.ts";
import { sha256File } from "../db/sha256.ts";

export const MANIFEST_FILE = "manifest.json";

export interface CopyRecord {
  /** Path relative to OUT: `db.192.168.53.10/db`. */
  file: string;
  size: number;
  sha256: string;
  copiedAt: string;
  /** Why the native reader refused the copy when extract read it back (kept as the node gave it). */
  unreadable?: string;
  /**
   * The file as it was when `sha256` was taken (absent when that could not be told: see
   * `hashWithIdentity`). While the file still matches it, its bytes are the ones hashed.
   */
  hashed?: FileIdentity;
}

/**
 * What the file system says of a file, enough to tell it was not written since: any write,
 * truncation, chmod or replacement changes the change time (which no tool can set back), the
 * inode or the size. This is how git tells an unchanged work-tree file without reading it.
 */
export interface FileIdentity {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  /** When the sha256 was taken. */
  hashedAt: string;
}

/** A verified `etcd snapshot` taken after the restore (`deno task after`). */
export interface BackupRecord {
  /** Path relative to OUT: `snapshot-20261124T101500Z.db`. */
  file: string;
  /** The member it was taken from. */
  node: string;
  size: number;
  sha256: string;
  /** etcd revision inside, as the native reader read it back. */
  revision: number;
  takenAt: string;
}

export interface Manifest {
  version: 1;
  nodes: string[];
  copies: Record<string, CopyRecord>;
  /** Nodes whose copy failed, with the reason. */
  failures: Record<string, string>;
  /** Verified snapshots taken after the restore, oldest first (absent in older manifests). */
  backups?: BackupRecord[];
}

/** Folder `talosctl cp` writes into for `node`, relative to OUT. */
export function copyDir(node: string): string {
  return `db.${node}`;
}

/** The copied file of `node`, relative to OUT. */
export function copyFile(node: string): string {
  return `${copyDir(node)}/db`;
}

export function readManifest(out: string): Manifest | undefined {
  const path = join(out, MANIFEST_FILE);
  if (!existsSync(path)) return undefined;
  try {
    const m = JSON.parse(readFileSync(path, "utf8")) as Manifest;
    if (m.version !== 1 || typeof m.copies !== "object") throw new Error("unknown format");
    m.failures ??= {};
    if (m.backups !== undefined && !Array.isArray(m.backups)) throw new Error("bad backups");
    return m;
  } catch (error) {
    throw new RefusedError(`Cannot read "${path}": ${(error as Error).message}`, {
      hint: "move the folder aside and extract again, or pass another --out",
    });
  }
}

/** The identity of `path` now (`hashedAt` as given), or undefined when the system has no ctime. */
function identityOf(path: string, hashedAt: string): FileIdentity | undefined {
  const st = Deno.statSync(path);
  if (!st.ctime || !st.mtime || st.ino === null || st.dev === null) return undefined;
  return {
    dev: st.dev,
    ino: st.ino,
    size: st.size,
    mtimeMs: st.mtime.getTime(),
    ctimeMs: st.ctime.getTime(),
    hashedAt,
  };
}

/**
 * The sha256 of `path` and, when it can vouch for it later, the file's identity from before
 * the hashing began. Any write during the hashing or after it sets the modification and change
 * times to its own moment (from the kernel's coarse clock: a few ms behind at most); a
 * replacement changes the inode. So a later look that finds the same identity finds the bytes
 * that were hashed, provided the file was last changed clearly before the hashing began
 * (`settledBy`, git's "racily clean" rule: the change time counts to its whole second, all Deno
 * reports): otherwise a write in the same moment could carry the same times, and no identity
 * is kept (the next look hashes).
 */
export async function hashWithIdentity(
  path: string,
  hash: (path: string) => Promise<string> = sha256File,
  now: () => number = Date.now,
): Promise<{ sha256: string; hashed?: FileIdentity }> {
  const start = now();
  const id = identityOf(path, new Date(start).toISOString());
  const sha256 = await hash(path);
  const usable = id !== undefined && settledBy(id, start);
  return usable ? { sha256, hashed: id } : { sha256 };
}

/** How much older than the hashing's start a file's last change must be (see above). */
export const RACY_MS = 50;

/**
 * Whether a later write to the file would change `id`'s times: its modification time is older
 * than `start` by `RACY_MS`, and so is the end of the second its change time is in (Deno gives
 * the change time in whole seconds, and some file systems keep only seconds for both; a write
 * in the same second, its modification time put back, would otherwise not show).
 */
export function settledBy(id: { mtimeMs: number; ctimeMs: number }, start: number): boolean {
  return id.mtimeMs < start - RACY_MS && secondEnd(id.ctimeMs) <= start - RACY_MS;
}

/** When a file whose last change is at `id` stops being racily new (see `settledBy`). */
export function settlesAt(id: { mtimeMs: number; ctimeMs: number }): number {
  return Math.max(id.mtimeMs + RACY_MS + 1, secondEnd(id.ctimeMs) + RACY_MS);
}

const secondEnd = (ms: number) => Math.floor(ms / 1000) * 1000 + 1000;

/** The identity a file has now, for `settlesAt` (undefined without a change time). */
export function fileTimes(path: string): { mtimeMs: number; ctimeMs: number } | undefined {
  return identityOf(path, "");
}

/** True when `path` is, by the file system's account, the file `id` describes. */
export function unchangedSince(path: string, id: FileIdentity): boolean {
  const now = identityOf(path, id.hashedAt);
  return now !== undefined && now.dev === id.dev && now.ino === id.ino &&
    now.size === id.size && now.mtimeMs === id.mtimeMs && now.ctimeMs === id.ctimeMs;
}

/** Writes the manifest atomically (temp file + rename), mode 0600. */
export function writeManifest(out: string, manifest: Manifest): void {
  ensurePrivateDir(out);
  const path = join(out, MANIFEST_FILE);
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(manifest, null, 2) + "\n", { mode: 0o600 });
  renameSync(tmp, path);
}

/**
 * A copy's check: `hashed` says how the sha256 was found to match: taken again now, or not
 * taken because the file is unchanged since it was (`unchanged`: the identity that says so).
 * `identity`: the file's identity from this hashing, when it can vouch for the next look.
 */
export type CopyCheck =
  | { ok: true; how?: "hashed" | "unchanged"; identity?: FileIdentity }
  | { ok: false; reason: string };

/**
 * Is the copy of `node` present, readable, and byte-for-byte what the manifest recorded?
 * `hash` computes the sha256 (default: here, `sha256File`; status hands it to its workers).
 * With `trustUnchanged` (status, which changes nothing), a file unchanged since its sha256 was
 * taken (`CopyRecord.hashed`) is not hashed again; every destructive step hashes again.
 */
export async function verifyCopy(
  out: string,
  manifest: Manifest | undefined,
  node: string,
  hash: (path: string) => Promise<string> = sha256File,
  options: { trustUnchanged?: boolean } = {},
): Promise<CopyCheck> {
  const record = manifest?.copies[node];
  if (!record) {
    const failure = manifest?.failures[node];
    return { ok: false, reason: failure ? `copy failed: ${failure}` : "no copy in the manifest" };
  }
  const path = join(out, record.file);
  try {
    const size = statSync(path).size;
    if (size !== record.size) {
      return { ok: false, reason: `size is ${size}, manifest says ${record.size}` };
    }
    if (options.trustUnchanged && record.hashed && unchangedSince(path, record.hashed)) {
      return { ok: true, how: "unchanged" };
    }
    const { sha256, hashed } = await hashWithIdentity(path, hash);
    if (sha256 !== record.sha256) return { ok: false, reason: "sha256 differs from the manifest" };
    return { ok: true, how: "hashed", ...(hashed ? { identity: hashed } : {}) };
  } catch (error) {
    if (error instanceof InterruptedError) throw error; // Ctrl-C: not a fact about the copy
    return { ok: false, reason: `unreadable: ${(error as Error).message}` };
  }
}
