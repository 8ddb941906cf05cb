/**
 * The real etcd db files shipped in `fixtures/sim/` for the model backend (no etcd
 * installed): made once with etcd 3.4.23 by `lib/sim/make_fixtures.ts`, described by
 * `fixtures/sim/fixtures.json` (etcdctl `snapshot status` of each file, its alarms, the
 * member IDs of the cluster that wrote them, and the keys `lab load`/`lab break` wrote).
 */

import { readFileSync } from "node:fs";
import { fromFileUrl } from "./paths.ts";
import type { KeyPlan } from "./state.ts";

export interface FixtureFile {
  sha256: string;
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
  size: number;
  alarms: { memberID: string; alarm: string }[];
}

export interface FixtureManifest {
  generatedWith: string;
  /** Decimal member IDs of the 3-node cluster that wrote the files, in node order. */
  members: string[];
  keys: KeyPlan;
  /** `fresh.db` (just started), `loaded.db` (after load), `late.db` (after break). */
  files: Record<string, FixtureFile>;
}

export const FIXTURE_DIR = fromFileUrl(new URL("../../fixtures/sim/", import.meta.url));

let cached: FixtureManifest | undefined;

export function fixtureManifest(): FixtureManifest {
  cached ??= JSON.parse(readFileSync(FIXTURE_DIR + "fixtures.json", "utf8"));
  return cached!;
}

export function fixturePath(name: string): string {
  return FIXTURE_DIR + name;
}

export async function sha256File(path: string): Promise<string> {
  const data = readFileSync(path);
  const digest = await crypto.subtle.digest("SHA-256", data);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The fixture a file is a byte-exact copy of, if any. */
export async function fixtureOf(path: string): Promise<[string, FixtureFile] | undefined> {
  const sum = await sha256File(path);
  return Object.entries(fixtureManifest().files).find(([, f]) => f.sha256 === sum);
}
