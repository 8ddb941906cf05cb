/**
 * Do the copies tell the same story? The seed is the copy with the highest revision; this
 * checks that its key history agrees with the majority of the copies, compaction handled, and
 * says plainly which copies could not be compared and why.
 *
 * The view every copy is hashed over: C = the highest compaction among the copies, R = the
 * lowest revision among them. Each copy is reduced to what etcd would hash after compacting to
 * C and reading at R (etcd's `HashByRev`, see `HistoryView` in etcd_db.ts): the entries in
 * (C, R], plus, per key, its latest revision ≤ R at or below C unless a deletion. A copy
 * compacted at C and one never compacted hash alike, so every readable copy is comparable,
 * (C, R] empty included (then: the keys as of R).
 *
 * One view for all copies, not one per pair: then "agree" is an equivalence (pairwise views
 * of different width are not transitive: a copy far behind agrees with two copies that
 * disagree with each other after it ends), the copies fall into groups, and each copy is read
 * whole once, hashed in the same pass. What one view cannot do: reach a copy whose revision is
 * below another copy's compaction (C > its revision: the compacted copy no longer holds the
 * history that copy ends in). Such a copy is left out, named with that reason, and counts
 * against the majority: a majority is more than half of ALL the nodes, never of the copies
 * that happened to be comparable. The known limit of one view: writes after R (the lowest
 * compared revision) are not compared; a copy a little behind hides a split after it.
 *
 * Two steps: {@linkcode planComparison} says what to hash (from `readHistorySpan`, a few pages
 * per copy), `readStatus(path, { history: range })` hashes each copy in its full read, and
 * {@linkcode compareCopies} groups the results.
 *
 * @example
 * ```ts
 * import { keyHistoryHash, readHistorySpan } from "./etcd_db.ts";
 * import { compareCopies, planComparison } from "./compare.ts";
 * const files: Record<string, string> = { a: "a.db", b: "b.db", c: "c.db" };
 * const spans = await Promise.all(Object.entries(files).map(async ([node, path]) => ({
 *   node, ...(await readHistorySpan(path)),
 * })));
 * const plan = planComparison(spans);
 * const verdict = compareCopies(await Promise.all(plan.compared.map(async (node) => ({
 *   node,
 *   revision: spans.find((s) => s.node === node)!.revision,
 *   history: await keyHistoryHash(files[node], plan.range!.uptoRevision, plan.range!.sinceRevision),
 * }))), { notCompared: plan.notCompared });
 * if (verdict.highestDisagrees) console.warn(`majority points to ${verdict.majorityPick?.node}`);
 * ```
 */

/** The view to hash on every copy: compacted at `sinceRevision`, read at `uptoRevision`. */
export interface HistoryRange {
  /** The highest compaction among the compared copies (C). */
  sinceRevision: number;
  /** The lowest revision among the compared copies (R ≥ C). */
  uptoRevision: number;
}

/** A copy, or a node without one, left out of the comparison, and why. */
export interface NotCompared {
  node: string;
  reason: string;
}

/** What to compare: the view, the copies hashed over it, and those left out. */
export interface ComparisonPlan {
  /** Undefined when fewer than two copies can be compared. */
  range?: HistoryRange;
  compared: string[];
  notCompared: NotCompared[];
}

/** One copy and its key-history hash over the view. */
export interface CopyHistory {
  node: string;
  revision: number;
  history: { hash: number; sinceRevision: number; uptoRevision: number };
}

/** Copies whose history hashes are equal. */
export interface HistoryGroup {
  historyHash: number;
  nodes: string[];
}

export interface CopyComparison {
  /** The view hashed; undefined when nothing was compared (`unavailable` says why). */
  range?: HistoryRange;
  /** Largest group first (ties: the group seen first). */
  groups: HistoryGroup[];
  /** The group holding more than half of ALL the nodes, not compared ones included. */
  majority?: HistoryGroup;
  /** Compared copies outside the majority (every compared copy when there is none). */
  outside: string[];
  /** Nodes whose copy was not compared, with the reason. */
  notCompared: NotCompared[];
  /** Why no two copies were compared; undefined when they were. */
  unavailable?: string;
  /** The compared copy with the highest revision (ties: the first given). */
  highest?: { node: string; revision: number };
  /** True when every node's copy was compared and all agree. */
  allAgree: boolean;
  /** True when a majority exists and the highest compared copy is not in it. */
  highestDisagrees: boolean;
  /** The highest-revision copy within the majority (what the majority points to). */
  majorityPick?: { node: string; revision: number };
}

/**
 * The view for `copies` (every readable copy): C = the highest compaction, R = the lowest
 * revision among the copies that reach C; a copy below C is not compared.
 */
export function planComparison(
  copies: readonly { node: string; revision: number; compactRevision: number }[],
): ComparisonPlan {
  if (copies.length === 0) {
    return { compared: [], notCompared: [] };
  }
  const top = copies.reduce((a, c) => (c.compactRevision > a.compactRevision ? c : a));
  const since = top.compactRevision;
  const notCompared = copies.filter((c) => c.revision < since).map((c) => ({
    node: c.node,
    reason: `its revision ${c.revision} is below the compaction of "${top.node}" (${since}), ` +
      `which no longer holds the history this copy ends in`,
  }));
  const compared = copies.filter((c) => c.revision >= since);
  if (compared.length < 2) return { compared: compared.map((c) => c.node), notCompared };
  return {
    range: { sinceRevision: since, uptoRevision: Math.min(...compared.map((c) => c.revision)) },
    compared: compared.map((c) => c.node),
    notCompared,
  };
}

/** The view, for people: which revisions and what compaction kept. */
export function describeRange(range: HistoryRange): string {
  const { sinceRevision: c, uptoRevision: r } = range;
  if (c === 0) return `revisions 1-${r}`;
  if (r === c) return `the keys as of revision ${r}, where a copy is compacted`;
  return `revisions ${c + 1}-${r} and the keys compaction at ${c} kept`;
}

/**
 * No comparison: why, for every node (`notCompared`, plus `reason` for the copies that were
 * read but are too few to compare).
 */
export function notComparable(
  reason: string,
  readable: readonly { node: string; revision: number }[],
  notCompared: readonly NotCompared[],
): CopyComparison {
  const left = readable.filter((c) => !notCompared.some((n) => n.node === c.node));
  return {
    groups: [],
    outside: [],
    notCompared: [...notCompared, ...left.map((c) => ({ node: c.node, reason }))],
    unavailable: reason,
    allAgree: false,
    highestDisagrees: false,
  };
}

/**
 * Groups copies by history hash and says whether the highest-revision copy sides with the
 * majority. `notCompared` (nodes without a compared copy) count as nodes: a majority is more
 * than half of compared and not compared together.
 * @throws {RangeError} when there are no copies, or they were hashed over different ranges
 */
export function compareCopies(
  copies: readonly CopyHistory[],
  options: { notCompared?: readonly NotCompared[] } = {},
): CopyComparison {
  if (copies.length === 0) throw new RangeError("No copies to compare");
  const notCompared = [...(options.notCompared ?? [])];
  const { sinceRevision, uptoRevision } = copies[0].history;
  const odd = copies.filter((c) =>
    c.history.sinceRevision !== sinceRevision || c.history.uptoRevision !== uptoRevision
  );
  if (odd.length > 0) {
    const ranges = copies.map((c) =>
      `"${c.node}" (${c.history.sinceRevision}, ${c.history.uptoRevision}]`
    );
    throw new RangeError(`Copies were hashed over different ranges: ${ranges.join(", ")}`);
  }
  const byHash = new Map<number, string[]>();
  for (const c of copies) {
    const nodes = byHash.get(c.history.hash) ?? [];
    nodes.push(c.node);
    byHash.set(c.history.hash, nodes);
  }
  const groups = [...byHash].map(([historyHash, nodes]) => ({ historyHash, nodes }))
    .sort((a, b) => b.nodes.length - a.nodes.length);
  const total = copies.length + notCompared.length;
  const majority = groups[0].nodes.length * 2 > total ? groups[0] : undefined;
  const highestOf = (list: readonly CopyHistory[]) =>
    list.reduce((best, c) => (c.revision > best.revision ? c : best));
  const top = highestOf(copies);
  const inMajority = majority && copies.filter((c) => majority.nodes.includes(c.node));
  const pick = inMajority && highestOf(inMajority);
  return {
    range: { sinceRevision, uptoRevision },
    groups,
    majority,
    outside: copies.filter((c) => !majority?.nodes.includes(c.node)).map((c) => c.node),
    notCompared,
    highest: { node: top.node, revision: top.revision },
    allAgree: groups.length === 1 && notCompared.length === 0,
    highestDisagrees: majority !== undefined && !majority.nodes.includes(top.node),
    majorityPick: pick && { node: pick.node, revision: pick.revision },
  };
}
