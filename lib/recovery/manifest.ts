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

/** Writes the manifest atomically (temp file + rename), mode 0600. */
export function writeManifest(out: string, manifest: Manifest): void {
  ensurePrivateDir(out);
  const path = join(out, MANIFEST_FILE);
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(manifest, null, 2) + "\n", { mode: 0o600 });
  renameSync(tmp, path);
}

export type CopyCheck = { ok: true } | { ok: false; reason: string };

/**
 * Is the copy of `node` present, readable, and byte-for-byte what the manifest recorded?
 * `hash` computes the sha256 (default: here, `sha256File`; status hands it to its workers).
 */
export async function verifyCopy(
  out: string,
  manifest: Manifest | undefined,
  node: string,
  hash: (path: string) => Promise<string> = sha256File,
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
    const sha = await hash(path);
    if (sha !== record.sha256) return { ok: false, reason: "sha256 differs from the manifest" };
    return { ok: true };
  } catch (error) {
    if (error instanceof InterruptedError) throw error; // Ctrl-C: not a fact about the copy
    return { ok: false, reason: `unreadable: ${(error as Error).message}` };
  }
}
