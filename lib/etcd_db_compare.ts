/**
 * Do the copies tell the same story? The seed is the copy with the highest revision; this
 * checks that its key history agrees with the majority of the copies up to the highest
 * revision all of them hold. A copy that is ahead but disagrees (a member that went its own
 * way) is worth a warning before it becomes everyone's data.
 *
 * Two steps: {@linkcode commonHistoryRange} says what to hash, `keyHistoryHash` (etcd_db.ts)
 * hashes each copy over it, {@linkcode compareCopies} groups the results. The tasks take the
 * range from `readHistorySpan` (a few pages per copy) and the hashes from
 * `readStatus(path, { history: range })`, so each copy is read whole once (lib/copies.ts).
 *
 * @example
 * ```ts
 * import { keyHistoryHash, readStatus } from "./etcd_db.ts";
 * import { commonHistoryRange, compareCopies } from "./etcd_db_compare.ts";
 * const files = { a: "a.db", b: "b.db", c: "c.db" };
 * const copies = await Promise.all(Object.entries(files).map(async ([node, path]) => {
 *   const s = await readStatus(path);
 *   return { node, path, revision: s.revision,
 *     compactRevision: Math.max(s.scheduledCompactRev, s.finishedCompactRev) };
 * }));
 * const range = commonHistoryRange(copies);
 * const verdict = compareCopies(await Promise.all(copies.map(async (c) => ({
 *   ...c, history: await keyHistoryHash(c.path, range.uptoRevision, range.sinceRevision),
 * }))));
 * if (verdict.highestDisagrees) console.warn(`majority points to ${verdict.majorityPick?.node}`);
 * ```
 */

/** The revisions to hash on every copy: `(sinceRevision, uptoRevision]`. */
export interface HistoryRange {
  /** Exclusive: the highest compaction among the copies. */
  sinceRevision: number;
  /** Inclusive: the lowest revision among the copies (all of them hold it). */
  uptoRevision: number;
}

/** One copy and its key-history hash over the common range. */
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
  range: HistoryRange;
  /** Largest group first (ties: the group seen first). */
  groups: HistoryGroup[];
  /** The group holding more than half of the copies, if any. */
  majority?: HistoryGroup;
  /** The copy with the highest revision (ties: the first given). */
  highest: { node: string; revision: number };
  /** True when every copy agrees. */
  allAgree: boolean;
  /** True when a majority exists and the highest copy is not in it. */
  highestDisagrees: boolean;
  /** The highest-revision copy within the majority (what the majority points to). */
  majorityPick?: { node: string; revision: number };
}

/** The range every copy can be hashed over. */
export function commonHistoryRange(
  copies: readonly { revision: number; compactRevision: number }[],
): HistoryRange {
  if (copies.length === 0) throw new RangeError("No copies to compare");
  return {
    sinceRevision: Math.max(...copies.map((c) => c.compactRevision)),
    uptoRevision: Math.min(...copies.map((c) => c.revision)),
  };
}

/**
 * Groups copies by history hash and says whether the highest-revision copy sides with the
 * majority.
 * @throws {RangeError} when there are no copies, or they were hashed over different ranges
 */
export function compareCopies(copies: readonly CopyHistory[]): CopyComparison {
  if (copies.length === 0) throw new RangeError("No copies to compare");
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
  const majority = groups[0].nodes.length * 2 > copies.length ? groups[0] : undefined;
  const highestOf = (list: readonly CopyHistory[]) =>
    list.reduce((best, c) => (c.revision > best.revision ? c : best));
  const top = highestOf(copies);
  const inMajority = majority && copies.filter((c) => majority.nodes.includes(c.node));
  const pick = inMajority && highestOf(inMajority);
  return {
    range: { sinceRevision, uptoRevision },
    groups,
    majority,
    highest: { node: top.node, revision: top.revision },
    allAgree: groups.length === 1,
    highestDisagrees: majority !== undefined && !majority.nodes.includes(top.node),
    majorityPick: pick && { node: pick.node, revision: pick.revision },
  };
}
