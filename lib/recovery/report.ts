/**
 * `OUT/report.md`: the incident timeline, ready to paste: outcome, seed, the revision of
 * every copy, each step with its duration and outcome, and every command that changed the
 * cluster. Built from `OUT/journal.jsonl` (all runs, so steps run one by one count too).
 */

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { JournalEntry } from "../run/journal.ts";
import { ensurePrivateDir, Journal } from "../run/journal.ts";
import { type Manifest, readManifest } from "./manifest.ts";
import { formatMs } from "../run/poll.ts";

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

  lines.push(...renderAfter(entries, facts, manifest));

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

interface AfterFacts {
  backup?: { path: string; sha256: string; node: string; revision: number; restoreCommand: string };
  kubelets?: {
    workers: { address: string; name: string }[];
    restarted: string[];
    already: string[];
    skipped?: string;
  };
  pods?: {
    stuck?: { namespace: string; name: string; reason: string; restartable: boolean }[];
    detail?: string;
    deleted: string[];
    already: string[];
  };
}

/** The window of writes a rebuild lost: from the seed's copy to the first accepted reset. */
export function lostWindow(
  entries: JournalEntry[],
  manifest: Manifest | undefined,
  seed: string | undefined,
): { copiedAt?: string; wipedAt?: string; span?: string } {
  const copiedAt = (seed && manifest?.copies[seed]?.copiedAt) ||
    Object.values(manifest?.copies ?? {}).map((c) => c.copiedAt).sort().at(-1);
  let wipedAt: string | undefined;
  for (const e of entries) {
    if (e.type === "step" && e.step === "wipe" && e.event === "start") wipedAt = undefined;
    if (e.type === "call" && e.step === "wipe" && e.mutating && e.exitCode === 0) wipedAt ??= e.ts;
  }
  const span = copiedAt && wipedAt
    ? formatMs(Math.max(0, Date.parse(wipedAt) - Date.parse(copiedAt)))
    : undefined;
  return { copiedAt, wipedAt, span };
}

/** `## After the restore`: what was lost, the backup, the kubelets, the stuck pods. */
function renderAfter(
  entries: JournalEntry[],
  facts: Map<string, unknown>,
  manifest: Manifest | undefined,
): string[] {
  const a: AfterFacts = {
    backup: facts.get("after:backup") as AfterFacts["backup"],
    kubelets: facts.get("after:kubelets") as AfterFacts["kubelets"],
    pods: facts.get("after:pods") as AfterFacts["pods"],
  };
  if (!a.backup && !a.kubelets && !a.pods) return [];
  const lines = ["## After the restore", ""];
  const w = lostWindow(entries, manifest, facts.get("seed") as string | undefined);
  if (w.copiedAt && w.wipedAt) {
    lines.push(
      `- Lost: the writes etcd took after the seed's copy (${w.copiedAt}) until the wipe was ` +
        `accepted (${w.wipedAt}, ${w.span} later): the restored etcd does not hold them`,
    );
  } else lines.push("- Lost: nothing recorded in this OUT (no rebuild: no copy restored)");
  if (a.backup) {
    lines.push(
      `- Backup: \`${a.backup.path}\` from ${a.backup.node}, revision ${a.backup.revision}, ` +
        `sha256 \`${a.backup.sha256}\``,
      `- To restore from it: \`${a.backup.restoreCommand}\``,
    );
  }
  const k = a.kubelets;
  if (k) {
    const done = [...k.already, ...k.restarted];
    lines.push(
      `- Workers: ${k.workers.map((x) => `${x.address} (${x.name})`).join(", ") || "none"}; ` +
        `kubelets restarted: ${done.join(", ") || "none"}${k.skipped ? ` (${k.skipped})` : ""}`,
    );
  }
  const p = a.pods;
  if (p?.stuck) {
    lines.push(
      `- Stuck pods: ${p.stuck.length}${
        p.stuck.length
          ? ` (${p.stuck.map((x) => `${x.namespace}/${x.name} ${x.reason}`).join(", ")})`
          : ""
      }; restarted: ${[...p.already, ...p.deleted].join(", ") || "none"}`,
    );
    const bare = p.stuck.filter((x) => !x.restartable).map((x) => `${x.namespace}/${x.name}`);
    if (bare.length) lines.push(`- Never deleted (nothing recreates them): ${bare.join(", ")}`);
  } else if (p) lines.push(`- Stuck pods: not checked (${p.detail})`);
  lines.push("");
  return lines;
}
