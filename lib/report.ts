/**
 * `OUT/report.md`: the incident timeline, ready to paste: outcome, seed, the revision of
 * every copy, each step with its duration and outcome, and every command that changed the
 * cluster. Built from `OUT/journal.jsonl` (all runs, so steps run one by one count too).
 */

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { JournalEntry } from "./journal.ts";
import { ensurePrivateDir, Journal } from "./journal.ts";
import { readManifest } from "./manifest.ts";
import { formatMs } from "./poll.ts";

export const REPORT_FILE = "report.md";

interface CopyFact {
  node: string;
  revision?: number;
  totalKey?: number;
  size?: number;
  intact?: boolean;
  error?: string;
}

export function renderReport(out: string, entries: JournalEntry[]): string {
  const facts = new Map<string, unknown>();
  for (const e of entries) if (e.type === "fact") facts.set(e.key, e.value);
  const last = [...entries].reverse().find((e) => e.type === "end");
  const lastRun = [...entries].reverse().find((e) => e.type === "run");
  const manifest = (() => {
    try {
      return readManifest(out);
    } catch {
      return undefined;
    }
  })();
  const lines: string[] = ["# etcd recovery report", ""];
  const outcome = last?.type === "end"
    ? (last.planOnly
      ? "plan printed (no terminal, no --yes): nothing changed"
      : last.exitCode === 0
      ? "success"
      : `failed (exit ${last.exitCode}): ${last.error ?? ""}`)
    : "in progress or interrupted";
  lines.push(`- Outcome of the last run (\`${last?.task ?? "?"}\`): ${outcome}`);
  if (lastRun?.type === "run") lines.push(`- Nodes: ${lastRun.nodes.join(", ")}`);
  const seed = facts.get("seed");
  if (seed) lines.push(`- Seed: ${seed}`);
  const state = facts.get("clusterState");
  if (state) lines.push(`- Cluster state: ${state}`);
  const next = facts.get("continueWith");
  if (next && last?.type === "end" && last.exitCode !== 0) lines.push(`- To continue: \`${next}\``);
  lines.push("");

  const copies = (facts.get("copies") as CopyFact[] | undefined) ?? [];
  if (copies.length > 0 || manifest) {
    lines.push("## Copies", "", "| node | revision | keys | size | sha256 | intact |");
    lines.push("| --- | --- | --- | --- | --- | --- |");
    const nodes = manifest?.nodes ?? copies.map((c) => c.node);
    for (const node of nodes) {
      const c = copies.find((x) => x.node === node);
      const rec = manifest?.copies[node];
      lines.push(
        `| ${node} | ${c?.revision ?? "-"} | ${c?.totalKey ?? "-"} | ${rec?.size ?? "-"} | ${
          rec ? rec.sha256.slice(0, 16) : "-"
        } | ${
          c?.error ??
            (c?.intact === false
              ? "no"
              : rec?.unreadable
              ? `no: ${rec.unreadable}`
              : rec
              ? "yes"
              : manifest?.failures[node] ?? "-")
        } |`,
      );
    }
    lines.push("");
  }

  lines.push(
    "## Steps",
    "",
    "| step | outcome | duration | started |",
    "| --- | --- | --- | --- |",
  );
  const starts = new Map<string, string>();
  for (const e of entries) {
    if (e.type !== "step") continue;
    if (e.event === "start") starts.set(e.step, e.ts);
    else {
      lines.push(
        `| ${e.step} | ${e.event}${e.event === "failed" && e.detail ? `: ${e.detail}` : ""} | ${
          formatMs(e.durationMs ?? 0)
        } | ${starts.get(e.step) ?? e.ts} |`,
      );
    }
  }
  lines.push("", "## Timeline", "");
  for (const e of entries) {
    if (e.type === "step" && e.event === "start") lines.push(`- ${e.ts} ${e.step}: ${e.detail}`);
    if (e.type === "call" && e.mutating) {
      lines.push(`- ${e.ts} \`${e.command}\` → exit ${e.exitCode ?? "none (ended)"}`);
    }
    if (e.type === "end") lines.push(`- ${e.ts} ${e.task} ended with exit ${e.exitCode}`);
  }
  return lines.join("\n") + "\n";
}

/** Writes OUT/report.md from the whole journal; returns its path. */
export function writeReport(out: string): string {
  ensurePrivateDir(out);
  const path = join(out, REPORT_FILE);
  writeFileSync(path, renderReport(out, Journal.readAll(out)), { mode: 0o600 });
  return path;
}
