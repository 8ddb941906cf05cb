/**
 * Which way back? A pure function of the evidence gathered from every node (its etcd service
 * and events, `etcd status`, members, alarms) and from the copies (their histories compared):
 * the least destructive procedure the evidence supports, with its reasons. A piece of evidence
 * that could not be gathered is a reason too, never a silent default.
 *
 * | verdict    | when                                                              |
 * | ---------- | ----------------------------------------------------------------- |
 * | healthy    | every node a running voter following one leader, no alarm         |
 * | alarm-only | CORRUPT, quorum holds, every copy agrees, no member shown bad      |
 * | nospace    | NOSPACE, quorum holds, no member shown bad                         |
 * | replace    | quorum holds among healthy members; a minority is bad             |
 * | rebuild    | no leader anywhere (quorum lost), or no healthy majority is left  |
 * | unknown    | not enough evidence to tell (a node silent, CORRUPT without copies) |
 *
 * @example
 * ```ts
 * import { decide } from "./triage.ts";
 * const v = decide({ nodes: ["a", "b", "c"], evidence: new Map(), copies: undefined });
 * console.log(v.verdict, v.reasons); // "unknown", ["no node answered …"]
 * ```
 */

import type { Alarm, EtcdStatusRow, Member, ServiceInfo } from "../talos/parse.ts";
import { followsLeader, memberForNode } from "../talos/parse.ts";
import { sub } from "../talos/talosctl.ts";

export type Verdict = "healthy" | "alarm-only" | "nospace" | "replace" | "rebuild" | "unknown";

/** What one node showed. Each part is undefined when it was not asked, `{ error }` when it failed. */
export interface NodeEvidence {
  /** `talosctl version` answered (the Talos tag), or why not. */
  version?: { tag: string } | { error: string };
  /** `service etcd`, or why it could not be read. */
  service?: ServiceInfo | { error: string };
  /** This node's row of `etcd status`, or why there is none. */
  status?: EtcdStatusRow | { error: string };
}

/** The copies' comparison, as far as it went. */
export interface CopiesEvidence {
  /** Nodes whose copies were compared. */
  compared: string[];
  /** The majority of the compared copies (more than half of them), if any. */
  majority?: string[];
  /** Compared copies outside the majority: their history differs. */
  outside: string[];
  /** The highest-revision copy within the majority. */
  majorityPick?: string;
  /** Why some or all copies were not compared (missing, unreadable, a single copy). */
  notCompared?: string;
}

export interface TriageInput {
  nodes: string[];
  evidence: Map<string, NodeEvidence>;
  /** `etcd members` as a node following the leader lists them (undefined: not known). */
  members?: Member[];
  /** `etcd alarm list` as a node following the leader lists them (undefined: not known). */
  alarms?: Alarm[];
  /** Undefined when no copies were read (no `--out` with copies). */
  copies?: CopiesEvidence;
}

export interface NodeFinding {
  node: string;
  /** The member ID (hex) that `etcd status` or `etcd members` gives this node. */
  memberId?: string;
  /** `running voter`, `learner`, `crash loop`, `down`, `no leader`, … */
  role: string;
  /** Why this node counts as bad, if it does. */
  bad?: string;
}

export interface Decision {
  verdict: Verdict;
  /** The nodes to replace (only for `replace`). */
  replace: string[];
  /** The node a full rebuild would restore from, or null when the copies do not say. */
  seed: string | null;
  reasons: string[];
  findings: NodeFinding[];
  /** The alarms seen (type and member hex id), from the alarm list or from `etcd status`. */
  alarms: { type: string; memberId: string; node?: string }[];
  /** Nodes that follow a leader, and that leader's member id. */
  leader?: string;
}

/** Most members that may fail with `n` members: quorum is `floor(n/2) + 1`. */
export function quorumOf(n: number): number {
  return Math.floor(n / 2) + 1;
}

const failed = <T extends object>(x: T | { error: string } | undefined): x is { error: string } =>
  x !== undefined && "error" in x;

/** Why a service is crash-looping, from its events; undefined when it is not. */
export function crashLoopReason(info: ServiceInfo): string | undefined {
  const messages = info.events.map((e) => e.message);
  const looping = messages.filter((m) =>
    /going to restart forever|exited without error, going to restart it/.test(m)
  );
  if (looping.length === 0) return undefined;
  const text = messages.join("\n");
  if (/found data inconsistency with peers/.test(text)) {
    return "its data differs from its peers (etcd's initial corruption check: found data inconsistency with peers)";
  }
  if (/crc mismatch/i.test(text)) return "its WAL is damaged (crc mismatch)";
  if (/permanently removed|exited without error, going to restart it/.test(text)) {
    return "its member was removed from the cluster while its data dir remains (etcd exits 0 and restarts forever)";
  }
  const last = /last log "(.*)"\)/.exec(looping[0])?.[1];
  return `its etcd keeps failing and restarting${last ? ` (last log: ${last.slice(0, 120)})` : ""}`;
}

/** Alarms from the ERRORS cell of `etcd status`: `memberID:<decimal> alarm:CORRUPT`. */
export function alarmsOfStatus(row: EtcdStatusRow): { type: string; memberId: string }[] {
  return row.errors.flatMap((e) => {
    const m = /^(?:memberID:(\d+) )?alarm:(\w+)/.exec(e.trim());
    if (!m) return [];
    const id = m[1] ? BigInt(m[1]).toString(16).padStart(16, "0") : "0".repeat(16);
    return [{ type: m[2], memberId: id }];
  });
}

/** The least destructive way back the evidence supports. */
export function decide(input: TriageInput): Decision {
  const { nodes, evidence } = input;
  const reasons: string[] = [];
  const quorum = quorumOf(nodes.length);
  const rowOf = (n: string) => {
    const s = evidence.get(n)?.status;
    return s && !failed(s) ? s : undefined;
  };
  const memberIdOf = (n: string) =>
    rowOf(n)?.member ?? (input.members && memberForNode(input.members, n)?.id);

  // The alarms: the list when a node could give it, else what etcd status shows.
  const alarms = (input.alarms?.map((a) => ({ type: a.alarm, memberId: a.member })) ??
    dedupe(nodes.flatMap((n) => rowOf(n) ? alarmsOfStatus(rowOf(n)!) : [])))
    .map((a) => ({ ...a, node: nodes.find((n) => sameId(memberIdOf(n), a.memberId)) }));

  // Leaders followed, by member id.
  const leaders = new Map<string, string[]>();
  for (const n of nodes) {
    const row = rowOf(n);
    if (row && followsLeader(row)) leaders.set(row.leader, [...(leaders.get(row.leader) ?? []), n]);
  }
  const [leader, following] = [...leaders].sort((a, b) => b[1].length - a[1].length)[0] ?? [];

  const findings: NodeFinding[] = nodes.map((node) => {
    const e = evidence.get(node) ?? {};
    const finding: NodeFinding = { node, memberId: memberIdOf(node), role: "unknown" };
    if (failed(e.version) && failed(e.service)) {
      finding.role = "down";
      return finding;
    }
    const service = e.service && !failed(e.service) ? e.service : undefined;
    const loop = service && crashLoopReason(service);
    const row = rowOf(node);
    const listed = input.members?.find((m) => sameId(m.id, finding.memberId));
    if (loop) {
      finding.role = "crash loop";
      finding.bad = loop;
    } else if (row?.learner || listed?.learner) {
      finding.role = "learner";
    } else if (service && service.state !== "Running") {
      finding.role = `etcd ${service.state}`;
    } else if (row && !followsLeader(row)) {
      finding.role = "no leader";
    } else if (row && following?.includes(node) && service?.health === "OK") {
      finding.role = "running voter";
    } else if (row && following?.includes(node)) {
      finding.role = `voter, HEALTH ${service?.health ?? "?"}`;
    } else if (!row) {
      finding.role = `no etcd status${failed(e.status) ? ` (${e.status.error})` : ""}`;
    }
    const answers = e.version !== undefined && !failed(e.version);
    if (!finding.bad && answers && /^(etcd |no leader|no etcd status)/.test(finding.role)) {
      // Talos answers but its etcd does not take part: resetting it brings it back
      finding.bad = `Talos answers but its etcd is not a running voter (${finding.role})`;
    }
    if (!finding.bad && input.copies?.outside.includes(node)) {
      finding.bad = `its copy's history differs from the majority's (${
        input.copies.majority?.join(", ")
      })`;
    }
    const named = alarms.find((a) => a.type === "CORRUPT" && a.node === node);
    if (!finding.bad && named) finding.bad = `the CORRUPT alarm names its member ${named.memberId}`;
    return finding;
  });

  const seed = input.copies?.majorityPick ?? null;
  const decision = (verdict: Verdict, replace: string[] = []): Decision => ({
    verdict,
    replace,
    seed,
    reasons,
    findings,
    alarms,
    leader,
  });

  const down = findings.filter((f) => f.role === "down").map((f) => f.node);
  const healthy = findings.filter((f) => f.role === "running voter" && !f.bad);
  const bad = findings.filter((f) => f.bad);

  if (!leader) {
    const silent = nodes.filter((n) => !rowOf(n));
    if (silent.length === nodes.length) {
      reasons.push(
        `no node answered etcd status${down.length ? ` (down: ${down.join(", ")})` : ""}`,
      );
      if (down.length === nodes.length) return decision("unknown");
    } else {
      reasons.push(
        `no etcd member follows a leader (etcd status: leader 0000000000000000 on ${
          nodes.filter((n) => rowOf(n)).join(", ")
        }): quorum is lost`,
      );
    }
    return rebuildReasons(input, reasons, decision);
  }
  reasons.push(
    `quorum: ${
      following!.length
    } of ${nodes.length} members follow leader ${leader} (quorum is ${quorum})`,
  );
  for (const f of bad) reasons.push(`${f.node} is bad: ${f.bad}`);
  if (input.copies?.notCompared) reasons.push(`copies: ${input.copies.notCompared}`);

  if (bad.length > 0) {
    // CORRUPT says some member's data differs: the running members are trusted only when their
    // copies agree, or when every CORRUPT alarm names a member already shown bad
    const corrupt = alarms.filter((a) => a.type === "CORRUPT");
    const named = corrupt.every((a) => bad.some((f) => f.node === a.node));
    const vouched = input.copies?.majority &&
      healthy.every((f) => input.copies!.majority!.includes(f.node));
    if (corrupt.length > 0 && !named && !vouched) {
      reasons.push(
        "a CORRUPT alarm is armed: which of the running members hold good data can only be " +
          "told from their copies (etcd 3.5's alarm always names member 0); extract them and " +
          "diagnose with --out",
      );
      return decision("unknown");
    }
    if (healthy.length >= quorum) {
      reasons.push(
        `${healthy.map((f) => f.node).join(", ")} run as healthy voters that ${
          input.copies?.majority ? "agree" : "follow one leader"
        }: replacing ${bad.map((f) => f.node).join(", ")} only loses nothing`,
      );
      return decision("replace", bad.map((f) => f.node));
    }
    reasons.push(
      `removing ${bad.map((f) => f.node).join(", ")} would leave ${healthy.length} healthy ` +
        `member(s), fewer than a quorum of ${quorum}`,
    );
    return rebuildReasons(input, reasons, decision);
  }
  if (down.length > 0 || healthy.length < nodes.length) {
    const others = findings.filter((f) => f.role !== "running voter");
    reasons.push(
      `not every node is a running voter: ${others.map((f) => `${f.node} ${f.role}`).join(", ")}`,
    );
    return decision("unknown");
  }
  if (alarms.some((a) => a.type === "NOSPACE")) {
    reasons.push(
      `NOSPACE alarm (${alarmText(alarms, "NOSPACE")}): writes are refused until defrag and disarm`,
    );
    return decision("nospace");
  }
  if (alarms.some((a) => a.type === "CORRUPT")) {
    reasons.push(`CORRUPT alarm (${alarmText(alarms, "CORRUPT")}): every write fails`);
    const c = input.copies;
    if (!c || c.compared.length < nodes.length || c.outside.length > 0 || !c.majority) {
      reasons.push(
        c
          ? "the copies do not show every member agrees, so the bad member is not known"
          : "no copies were read: which member is bad can only be told from its copy " +
            "(the alarm of etcd 3.5 always names member 0)",
      );
      return decision("unknown");
    }
    reasons.push(`every copy agrees (${c.compared.join(", ")}) and no member is shown bad`);
    return decision("alarm-only");
  }
  if (input.alarms === undefined) {
    reasons.push("the alarm list could not be read: a healthy cluster is not proven");
    return decision("unknown");
  }
  reasons.push("every member a running voter and no alarm");
  return decision("healthy");
}

function rebuildReasons(
  input: TriageInput,
  reasons: string[],
  decision: (v: Verdict) => Decision,
): Decision {
  const c = input.copies;
  if (!c) reasons.push("no copies read yet: extract them to choose the seed");
  else if (!c.majorityPick) {
    reasons.push(
      `the copies have no agreeing majority${c.notCompared ? ` (${c.notCompared})` : ""}`,
    );
  } else reasons.push(`the agreeing majority of copies points to ${c.majorityPick}`);
  return decision("rebuild");
}

function sameId(a: string | undefined, b: string | undefined): boolean {
  return a !== undefined && b !== undefined && a.toLowerCase() === b.toLowerCase();
}

function dedupe<T>(list: T[]): T[] {
  const seen = new Set<string>();
  return list.filter((x) => !seen.has(JSON.stringify(x)) && seen.add(JSON.stringify(x)));
}

function alarmText(alarms: { type: string; memberId: string; node?: string }[], type: string) {
  return alarms.filter((a) => a.type === type)
    .map((a) => `member ${a.memberId}${a.node ? ` = ${a.node}` : ""}`).join(", ");
}

/** The default etcd quota (`quota-backend-bytes`): Talos does not set one. */
export const DEFAULT_QUOTA_BYTES = 2 * 1024 ** 3;

/** What to run next, as pasteable lines (`talos(node, args)` renders one talosctl call). */
export function nextSteps(
  d: Decision,
  options: {
    nodes: string[];
    talos: (node: string, args: string[]) => string;
    recover: string;
    /** `etcd status` rows by node, for the defrag order and the quota check. */
    status?: Map<string, EtcdStatusRow>;
  },
): string[] {
  const healthy = d.findings.filter((f) => f.role === "running voter" && !f.bad).map((f) => f.node);
  // cluster-wide calls go to the leader when it is healthy (it answers them without a hop)
  const leaderNode = d.findings.find((f) => d.leader && f.memberId === d.leader)?.node;
  const on = healthy.find((n) => n === leaderNode) ?? healthy[0];
  const disarm = on
    ? [
      `# clear the alarm (it survives the removal of its member), then look again after a minute:`,
      options.talos(on, ["etcd", "alarm", "disarm"]),
      `sleep 60; ${options.talos(on, ["etcd", "alarm", "list"])}`,
    ]
    : [];
  switch (d.verdict) {
    case "healthy":
      return ["# nothing to do: etcd is healthy"];
    case "alarm-only":
      return [
        ...disarm,
        "# if CORRUPT comes back (the leader checks hashes every minute), a member is bad after all:",
        "# take fresh copies into a new --out and diagnose again",
      ];
    case "nospace": {
      // defrag one member at a time, the leader last (defrag blocks that member meanwhile)
      const order = [...healthy.filter((n) => n !== on), ...(on ? [on] : [])];
      const full = [...(options.status ?? [])].filter(([, r]) => quotaFull(r.inUse)).map(([n]) =>
        n
      );
      return [
        "# defragment each member, one at a time, the leader last; then clear the alarm",
        ...order.map((n) => options.talos(n, ["etcd", "defrag"])),
        ...disarm,
        `# then compare DB SIZE with IN USE: ${
          options.talos(on ?? options.nodes[0], ["etcd", "status"])
        }`,
        ...quotaAdvice(full).map((l) => `# ${l}`),
      ];
    }
    case "replace":
      return [
        `# one bad node at a time: remove its member on a healthy node, reset only that node, wait`,
        ...d.replace.flatMap((n) => {
          const id = d.findings.find((f) => f.node === n)?.memberId;
          return [
            ...(id && on ? [options.talos(on, ["etcd", "remove-member", id])] : []),
            ...(on && d.alarms.length > 0 ? [options.talos(on, sub.alarmDisarm())] : []),
            options.talos(n, sub.reset(["EPHEMERAL"])),
            `# wait until ${
              on ?? "a healthy node"
            } lists ${n} as a voter (it rejoins as a learner first):`,
            on ? options.talos(on, ["etcd", "members"]) : "",
          ].filter(Boolean);
        }),
        ...(d.alarms.length > 0 ? disarm : []),
      ];
    case "rebuild":
      return [
        "# the full rebuild: every node wiped, restored from the seed's copy",
        d.seed ? `${options.recover} --seed ${d.seed}` : options.recover,
      ];
    case "unknown":
      return [
        "# not enough evidence to choose; fix what is missing above and diagnose again,",
        `# or, knowing that every write after the copies is lost: ${options.recover}`,
      ];
  }
}

/** IN USE above this share of the quota: defrag cannot bring the db far enough below it. */
export const QUOTA_FULL_SHARE = 0.8;

/** The live data (`IN USE` of etcd status) fills the default quota. */
export function quotaFull(inUse: string): boolean {
  const bytes = bytesOf(inUse);
  return bytes !== undefined && bytes > QUOTA_FULL_SHARE * DEFAULT_QUOTA_BYTES;
}

/** What to say when the live data of `nodes` fills the quota (empty when none does). */
export function quotaAdvice(nodes: string[]): string[] {
  if (nodes.length === 0) return [];
  return [
    `IN USE on ${nodes.join(", ")} is near the 2 GiB default quota: defrag cannot free live data`,
    "raise it in every control-plane node's machine config (cluster.etcd.extraArgs." +
    "quota-backend-bytes: 4294967296, 4 GiB; etcd suggests at most 8 GiB), reboot them one at a " +
    "time, then disarm",
  ];
}

/** `2.1 GB`, `603 MB (28.10%)` → bytes (SI, as go-humanize prints them). */
export function bytesOf(text: string): number | undefined {
  const m = /^([\d.]+)\s*(B|kB|MB|GB|TB)/.exec(text.trim());
  if (!m) return undefined;
  const unit = { B: 1, kB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 }[m[2]]!;
  return Number(m[1]) * unit;
}
