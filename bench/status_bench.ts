/**
 * `status` on three large copies, the whole task as the operator runs it after extract (a
 * process that checks each copy against the manifest, reads it, compares the copies), against
 * `etcdctl snapshot status` (ETCDCTL_API=3) run on the same three files one after another, as
 * the runbook does. Runs alternate (status, etcdctl, status, …) so a slow spell of a shared
 * machine hits both; the ratio is the median of the per-pair ratios. Prints figures; not a test.
 *
 * The copies are recorded as extract records them (sha256 and the file's identity), so status
 * does not hash them again; further lines show status with `--rehash` (every sha256 taken
 * again), with `--etcd-hash` (etcdctl's CRC-32C too) and with etcdctl installed (it then runs
 * etcdctl on each copy as a cross-check). status runs without etcdutl/etcdctl on its PATH
 * otherwise (the built-in reader alone).
 */

import { chmodSync, copyFileSync, existsSync, mkdirSync, statSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { copyFile, hashWithIdentity, writeManifest } from "../lib/recovery/manifest.ts";
import type { CopyRecord } from "../lib/recovery/manifest.ts";

const NODES = ["192.168.53.10", "192.168.53.11", "192.168.53.12"];
const STATUS_TASK = new URL("../tasks/02_status.ts", import.meta.url).pathname;
/** The permissions of `deno task status` (deno.json). */
const STATUS_PERMISSIONS = [
  "--allow-env",
  "--allow-read",
  "--allow-write",
  "--allow-run",
  "--allow-sys=cpus,uid,gid,statfs",
];

export interface Timed {
  wallMs: number;
  cpuMs: number;
  rss: number;
}

export type Timer = (argv: string[], env?: Record<string, string>) => Promise<Timed>;

/** OUT as extract leaves it: three copies of `db`, a manifest with their sha256 and identity. */
export async function makeCopies(db: string, out: string): Promise<string[]> {
  const size = statSync(db).size;
  const copies: Record<string, CopyRecord> = {};
  mkdirSync(out, { recursive: true, mode: 0o700 });
  const files: string[] = [];
  for (const node of NODES) {
    const file = join(out, copyFile(node));
    files.push(file);
    if (!existsSync(file) || statSync(file).size !== size) {
      mkdirSync(join(out, `db.${node}`), { recursive: true, mode: 0o700 });
      copyFileSync(db, file);
      chmodSync(file, 0o600);
    }
    const { sha256, hashed } = await hashWithIdentity(file);
    copies[node] = {
      file: copyFile(node),
      size,
      sha256,
      copiedAt: new Date().toISOString(),
      ...(hashed ? { hashed } : {}),
    };
  }
  writeManifest(out, { version: 1, nodes: NODES, copies, failures: {} });
  return files;
}

/** A PATH with bash and deno only: status finds no etcdutl or etcdctl there. */
function bareBin(dir: string): string {
  const bin = join(dir, "bare-bin");
  mkdirSync(bin, { recursive: true });
  for (const [name, target] of [["bash", "/bin/bash"], ["deno", Deno.execPath()]]) {
    if (!existsSync(join(bin, name))) symlinkSync(target, join(bin, name));
  }
  return bin;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const mib = (b: number) => (Number.isNaN(b) ? "?" : `${(b / 1024 / 1024).toFixed(0)} MiB`);

/** Measures and prints; returns the median ratio status / etcdctl. */
export async function benchStatus(
  dir: string,
  db: string,
  runs: number,
  timed: Timer,
): Promise<number> {
  const out = join(dir, "copies");
  const files = await makeCopies(db, out);
  const bare = { PATH: bareBin(dir), NO_COLOR: "1" };
  const status = (env: Record<string, string>, flags: string[] = []) =>
    timed(
      [Deno.execPath(), "run", ...STATUS_PERMISSIONS, STATUS_TASK, "--out", out, ...flags],
      env,
    );
  const etcdctl = () =>
    timed(
      ["sh", "-c", 'for f in "$@"; do etcdctl snapshot status "$f" -w json; done', "sh", ...files],
      { ETCDCTL_API: "3" },
    );
  const withTool = { PATH: Deno.env.get("PATH") ?? "", NO_COLOR: "1" };
  // One warm-up each: every run reads from the page cache.
  await status(bare);
  await etcdctl();
  const a: Timed[] = [];
  const b: Timed[] = [];
  const c: Timed[] = [];
  const d: Timed[] = [];
  const e: Timed[] = [];
  for (let i = 0; i < runs; i++) {
    a.push(await status(bare));
    b.push(await etcdctl());
    c.push(await status(withTool));
    d.push(await status(bare, ["--rehash"]));
    e.push(await status(bare, ["--etcd-hash"]));
  }
  const ratio = median(a.map((x, i) => x.wallMs / b[i].wallMs));
  const size = statSync(db).size;
  console.log(
    `\nstatus on ${files.length} copies of ${(size / 1e6).toFixed(0)} MB, whole processes, ` +
      `median of ${runs} alternating runs:`,
  );
  const rows = [
    ["", "wall", "CPU", "peak RSS"],
    ...([
      ["deno task status (built-in reader)", a],
      ["etcdctl snapshot status, each in turn", b],
      ["deno task status --rehash (every sha256 again)", d],
      ["deno task status --etcd-hash (etcdctl's CRC-32C too)", e],
      ["deno task status with etcdctl cross-check", c],
    ] as const).map(([name, list]) => [
      name,
      s(median(list.map((x) => x.wallMs))),
      Number.isNaN(list[0].cpuMs) ? "?" : s(median(list.map((x) => x.cpuMs))),
      mib(Math.max(...list.map((x) => x.rss))),
    ]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const row of rows) {
    console.log(
      row.map((cell, i) => i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))
        .join("   "),
    );
  }
  const ratioOf = (xs: Timed[]) => median(xs.map((x, i) => x.wallMs / b[i].wallMs)).toFixed(2);
  console.log(`status / etcdctl: ${ratio.toFixed(2)}x (median of the per-run ratios)`);
  console.log(`status --rehash / etcdctl: ${ratioOf(d)}x; --etcd-hash / etcdctl: ${ratioOf(e)}x`);
  return ratio;
}
