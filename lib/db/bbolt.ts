/**
 * A read-only, page-by-page reader of bbolt files (etcd's `member/snap/db`), written from the
 * bbolt v1.3.6–v1.4 sources: both meta pages validated (magic, version, FNV-1a checksum) and the
 * newer valid one used, the page size taken from the meta (probing for meta page 1 at
 * `1024 << i` when meta page 0 is bad, like bbolt ≥ 1.3.7), branch and leaf pages, overflow
 * pages and inline buckets. The file is never read whole: pages are read with `seek` + `read`
 * (runs of consecutive pages through two 256 KiB read-ahead windows) into buffers reused per tree
 * level, and every count, offset and page id is checked before use, so a damaged file gives an
 * {@linkcode EtcdDbError} and never another exception, a loop or a huge allocation.
 *
 * bbolt writes its headers in host order; every platform Talos runs on is little-endian.
 *
 * @example
 * ```ts
 * import { BoltDb } from "./bbolt.ts";
 * const db = await BoltDb.open("fixtures/db/etcd-3.4.db");
 * try {
 *   const key = db.findBucket(db.rootBucket(), new TextEncoder().encode("key"));
 *   const last = key && db.lastEntry(key); // the highest revision
 * } finally {
 *   db.close();
 * }
 * ```
 */

import { RecoveryError } from "../run/errors.ts";

/** Bytes in a page header: id u64, flags u16, count u16, overflow u32. */
export const PAGE_HEADER_SIZE = 16;
/** Bytes in a branch or leaf element. */
export const ELEMENT_SIZE = 16;
/** Page flags. Exactly one is set on a valid page. */
export const BRANCH_PAGE = 0x01;
export const LEAF_PAGE = 0x02;
export const META_PAGE = 0x04;
export const FREELIST_PAGE = 0x10;
/** Leaf element flag: the value is a sub-bucket header. */
export const BUCKET_LEAF_FLAG = 0x01;

const META_MAGIC = 0xed0cdaed;
const META_VERSION = 2;
/** Meta fields covered by the checksum: magic through txid. */
const META_CHECKSUM_SPAN = 56;
/** Page header + meta struct. */
const META_READ_SIZE = PAGE_HEADER_SIZE + 64;
/** bbolt refuses smaller files (`ErrInvalid`). */
const MIN_FILE_SIZE = 4096;
const PROBE_STEPS = 15;
const NO_FREELIST = 0xffff_ffff_ffff_ffffn;
/** Deeper trees than this are damage (a real one is a handful of levels). */
export const MAX_TREE_DEPTH = 64;
/** Sub-buckets nested deeper than this are damage (etcd nests none). */
export const MAX_BUCKET_NESTING = 16;
/** Problems kept in a report; the count goes on. */
const MAX_PROBLEMS = 50;
const TWO_POW_32 = 0x1_0000_0000;
/** Read-ahead for sequential page reads: WINDOWS windows of READ_AHEAD_BYTES. */
const READ_AHEAD_BYTES = 256 * 1024;
const WINDOWS = 2;

/** Bytes [start, end) of the file. */
interface Window {
  start: number;
  end: number;
  bytes: Uint8Array;
}

/**
 * A db file that cannot be read, or that fails its integrity check. The message names the file
 * and what is wrong; `problems` lists each finding.
 */
export class EtcdDbError extends RecoveryError {
  /** The file. */
  readonly path: string;
  /** Each thing found wrong, e.g. `page 12: invalid type unknown<00>`. */
  readonly problems: readonly string[];

  constructor(path: string, problems: string | readonly string[], options?: { cause?: unknown }) {
    const list = typeof problems === "string" ? [problems] : problems;
    super(`Cannot read etcd db "${path}": ${summarize(list)}`, {
      cause: options?.cause,
      hint: "use another node's copy, or copy this node's db again",
    });
    this.path = path;
    this.problems = list;
  }
}

/** One line for a list of findings: the first five, and how many more. */
export function summarize(problems: readonly string[]): string {
  if (problems.length === 1) return problems[0];
  const shown = problems.slice(0, 5).join("; ");
  const more = problems.length > 5 ? ` (and ${problems.length - 5} more)` : "";
  return `integrity check found ${problems.length} problems: ${shown}${more}`;
}

/** What one meta page slot holds, valid or not. */
export interface MetaPage {
  /** Slot: page 0 or page 1. */
  slot: 0 | 1;
  /** Byte offset it was read from. */
  offset: number;
  valid: boolean;
  /** Why it is not valid. */
  problem?: string;
  pageSize?: number;
  /** Root bucket page. */
  root?: bigint;
  /** Freelist page, all ones when not persisted (etcd on Linux). */
  freelist?: bigint;
  /** High-water mark: pages in use. */
  pgid?: bigint;
  txid?: bigint;
}

/** The meta page in use, with its fields checked against the file. */
export interface Meta {
  slot: 0 | 1;
  pageSize: number;
  root: number;
  /** Freelist page, or undefined when not persisted. */
  freelist?: number;
  /** High-water mark: pages in use; `pgid × pageSize` is the db size. */
  pgid: number;
  txid: bigint;
}

/** A page, or the page image of an inline bucket. `data` spans its overflow pages too. */
export interface Page {
  id: number;
  flags: number;
  count: number;
  overflow: number;
  data: Uint8Array;
  view: DataView;
  /** True for an inline bucket's page image (inside a leaf value). */
  inline: boolean;
}

/** A reusable buffer for `BoltDb.page`: returns `size` bytes, their content undefined. */
export type PageBuffer = (size: number) => Uint8Array;

/** One reusable buffer, grown as needed. */
export function pageBuffer(): PageBuffer {
  let buf = new Uint8Array(0);
  return (size) => {
    if (buf.length < size) buf = new Uint8Array(Math.max(size, buf.length * 2));
    return buf.subarray(0, size);
  };
}

/** A bucket: a root page, or an inline page image. */
export type BucketRef = { root: number; inline?: undefined } | { root: 0; inline: Page };

/**
 * Called for each key/value of a bucket, in key order. `flags` has BUCKET_LEAF_FLAG for a
 * sub-bucket. `key` and `value` may be views into a read-ahead window: copy what you keep, and
 * read no page of the db from inside a visitor (the next read may reuse the window).
 */
export type EntryVisitor = (key: Uint8Array, value: Uint8Array, flags: number) => void;

/** Collects findings of a full walk; also the reachable/freed page maps of `tx.Check()`. */
export class Findings {
  readonly problems: string[] = [];
  /** Problems found in all (the list keeps the first MAX_PROBLEMS). */
  total = 0;
  readonly reachable: Uint8Array;
  readonly freed: Uint8Array;
  /** Pages reached (overflow pages included). */
  reached = 0;

  constructor(pgid: number) {
    this.reachable = new Uint8Array(pgid);
    this.freed = new Uint8Array(pgid);
  }

  add(problem: string): void {
    this.total++;
    if (this.problems.length < MAX_PROBLEMS) this.problems.push(problem);
  }

  /** The list as reported, with a last line counting what was left out. */
  list(): string[] {
    const rest = this.total - this.problems.length;
    return rest > 0 ? [...this.problems, `${rest} more problems`] : [...this.problems];
  }
}

/** An open bbolt file. Read-only; takes no lock, so it can read a live member's db. */
export class BoltDb {
  readonly path: string;
  readonly fileSize: number;
  readonly pageSize: number;
  /** The meta page in use. */
  readonly meta: Meta;
  /** Both meta slots as found. */
  readonly metaPages: readonly MetaPage[];
  /** Pages read so far (a page with overflow counts once). */
  pagesRead = 0;
  #file: Deno.FsFile;
  /** Read-ahead windows, least recently used first. */
  #windows: Window[] = [];
  /** Where the last read ended: a read starting there is sequential. */
  #lastEnd = -1;
  /** The file's position (no seek needed to read from there), or -1 when unknown. */
  #filePos = -1;

  private constructor(
    path: string,
    file: Deno.FsFile,
    fileSize: number,
    meta: Meta,
    metaPages: MetaPage[],
  ) {
    this.path = path;
    this.#file = file;
    this.fileSize = fileSize;
    this.pageSize = meta.pageSize;
    this.meta = meta;
    this.metaPages = metaPages;
  }

  /**
   * Opens `path`, reads both meta pages and picks the newer valid one.
   * @throws {EtcdDbError} when the file is missing, too small, not bbolt, or cut short
   */
  static async open(path: string): Promise<BoltDb> {
    let file: Deno.FsFile;
    try {
      // Stat first: opening a FIFO would block, and a device could never end.
      const info = await Deno.stat(path);
      if (info.isDirectory) throw new EtcdDbError(path, "is a directory");
      if (!info.isFile) throw new EtcdDbError(path, "is not a regular file");
      file = await Deno.open(path, { read: true });
    } catch (error) {
      if (error instanceof EtcdDbError) throw error;
      throw new EtcdDbError(path, openProblem(error), { cause: error });
    }
    try {
      const fileSize = (await file.stat()).size;
      if (fileSize === 0) throw new EtcdDbError(path, "file is empty (0 bytes)");
      if (fileSize < MIN_FILE_SIZE) {
        throw new EtcdDbError(
          path,
          `file is too small to be a bbolt database (${fileSize} bytes, at least ${MIN_FILE_SIZE} needed)`,
        );
      }
      const read = (offset: number, length: number) => readAt(path, file, offset, length);
      const { meta, metaPages } = chooseMeta(path, fileSize, read);
      return new BoltDb(path, file, fileSize, meta, metaPages);
    } catch (error) {
      file.close();
      throw error;
    }
  }

  close(): void {
    try {
      this.#file.close();
    } catch {
      // already closed
    }
  }

  /**
   * Reads `into.length` bytes at `offset`: copied from a read-ahead window when one holds them
   * (see {@linkcode BoltDb.#borrow}), else straight from the file.
   */
  #read(offset: number, into: Uint8Array): void {
    const view = this.#borrow(offset, into.length);
    if (view) return into.set(view);
    this.#readFile(offset, into);
    this.#lastEnd = offset + into.length;
  }

  /**
   * The bytes [offset, offset + length) as a view into a read-ahead window, valid until the
   * next read; undefined when no window holds them. A walk mostly reads pages in file order:
   * a small read that starts where the last one ended refills the least recently used of
   * two windows of 256 KiB (small enough to stay in the CPU cache), so a 256 MB file costs
   * about two thousand reads, not sixty thousand, and a walk that jumps to another subtree and
   * back finds its window still there.
   */
  #borrow(offset: number, length: number): Uint8Array | undefined {
    const end = offset + length;
    const windows = this.#windows;
    for (let i = windows.length - 1; i >= 0; i--) {
      const w = windows[i];
      if (offset >= w.start && end <= w.end) {
        if (i !== windows.length - 1) windows.push(windows.splice(i, 1)[0]);
        this.#lastEnd = end;
        return w.bytes.subarray(offset - w.start, end - w.start);
      }
    }
    if (offset !== this.#lastEnd || length >= READ_AHEAD_BYTES / 2) return undefined;
    const limit = Math.min(this.fileSize, this.meta.pgid * this.pageSize);
    const size = Math.max(length, Math.min(READ_AHEAD_BYTES, limit - offset));
    const w = windows.length < WINDOWS
      ? { start: 0, end: 0, bytes: new Uint8Array(READ_AHEAD_BYTES) }
      : windows.shift()!;
    w.start = w.end = 0;
    this.#readFile(offset, w.bytes.subarray(0, size));
    w.start = offset;
    w.end = offset + size;
    windows.push(w);
    this.#lastEnd = end;
    return w.bytes.subarray(0, length);
  }

  /** Reads from the file, seeking only when it is not already at `offset`. */
  #readFile(offset: number, into: Uint8Array): void {
    const here = offset === this.#filePos;
    this.#filePos = -1;
    readInto(this.path, this.#file, offset, into, here);
    this.#filePos = offset + into.length;
  }

  /** Notes on the meta pages when one of them is not valid (bbolt then uses the other). */
  metaWarnings(): string[] {
    return this.metaPages.filter((m) => !m.valid).map((m) =>
      `meta page ${m.slot} is invalid (${m.problem}); using meta page ${this.meta.slot} (txid ${this.meta.txid})`
    );
  }

  /** The root bucket (its keys are the top-level buckets). */
  rootBucket(): BucketRef {
    return { root: this.meta.root };
  }

  /**
   * Reads page `id` with its overflow pages and checks its header: inside the high-water mark,
   * header id equal to `id`. With `into`, a walk can reuse one buffer per tree level: a leaf
   * page may then be a view into a read-ahead window, valid until the next read, and any other
   * page is read into the buffer `into` returns, valid until that buffer is used again.
   * @throws {EtcdDbError} naming the page and the problem
   */
  page(id: number, into?: PageBuffer): Page {
    const pgid = this.meta.pgid;
    if (!(id >= 0 && id < pgid)) {
      throw new EtcdDbError(this.path, `page ${id}: out of bounds (high-water mark ${pgid})`);
    }
    const ps = this.pageSize;
    const offset = id * ps;
    let first = into && this.#borrow(offset, ps);
    const borrowed = first !== undefined;
    if (!first) {
      first = into ? into(ps) : new Uint8Array(ps);
      this.#read(offset, first);
    }
    let view = new DataView(first.buffer, first.byteOffset, ps);
    const headerId = readU64(view, 0);
    if (headerId !== id) {
      throw new EtcdDbError(
        this.path,
        `page ${id}: header says page ${headerId} (${pageType(view.getUint16(8, true))})`,
      );
    }
    const flags = view.getUint16(8, true);
    const overflow = view.getUint32(12, true);
    if (overflow > 0 && id + overflow >= pgid) {
      throw new EtcdDbError(
        this.path,
        `page ${id}: ${overflow} overflow pages run past the high-water mark ${pgid}`,
      );
    }
    const size = (overflow + 1) * ps;
    let data = first;
    // A borrowed leaf stays borrowed when its overflow pages are in the same window.
    const whole = borrowed && flags === LEAF_PAGE &&
      (overflow === 0 ? first : this.#borrow(offset, size));
    if (whole) {
      data = whole;
    } else if (borrowed || overflow > 0) {
      data = into ? into(size) : new Uint8Array(size);
      if (data.buffer !== first.buffer || data.byteOffset !== first.byteOffset) data.set(first);
      if (overflow > 0) this.#read(offset + ps, data.subarray(ps));
    }
    if (data !== first) view = new DataView(data.buffer, data.byteOffset, size);
    this.pagesRead++;
    return { id, flags, count: view.getUint16(10, true), overflow, data, view, inline: false };
  }

  /**
   * The bucket named by a leaf element's value.
   * @throws {EtcdDbError} when the value is not a bucket header
   */
  bucketFromValue(where: string, value: Uint8Array): BucketRef {
    if (value.length < 16) {
      throw new EtcdDbError(this.path, `${where}: bucket value is ${value.length} bytes, not 16+`);
    }
    const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
    const root = readU64(view, 0);
    if (root !== 0) {
      if (!(root < this.meta.pgid && root >= 2)) {
        throw new EtcdDbError(
          this.path,
          `${where}: bucket root page ${root} is out of bounds (high-water mark ${this.meta.pgid})`,
        );
      }
      return { root };
    }
    const image = value.subarray(16);
    if (image.length < PAGE_HEADER_SIZE) {
      throw new EtcdDbError(this.path, `${where}: inline bucket is cut short`);
    }
    const iv = new DataView(image.buffer, image.byteOffset, image.byteLength);
    const page: Page = {
      id: 0,
      flags: iv.getUint16(8, true),
      count: iv.getUint16(10, true),
      overflow: iv.getUint32(12, true),
      data: image,
      view: iv,
      inline: true,
    };
    if (page.flags !== LEAF_PAGE) {
      throw new EtcdDbError(
        this.path,
        `${where}: inline bucket page has type ${pageType(page.flags)}, not leaf`,
      );
    }
    return { root: 0, inline: page };
  }

  /**
   * Looks up bucket `name` among the keys of `parent` (only the pages on the way are read).
   * Undefined when absent.
   * @throws {EtcdDbError} on damage along the way, or when `name` is a plain key
   */
  findBucket(parent: BucketRef, name: Uint8Array): BucketRef | undefined {
    let page = parent.inline ?? this.page(parent.root);
    const seen = new Set<number>();
    for (let depth = 0;; depth++) {
      this.#checkElements(page);
      if (page.flags === LEAF_PAGE) {
        for (let i = 0; i < page.count; i++) {
          const e = leafElement(page, i);
          const key = page.data.subarray(e.keyStart, e.keyEnd);
          if (compareBytes(key, name) !== 0) continue;
          const where = `${describe(page)} element ${i}`;
          if ((e.flags & BUCKET_LEAF_FLAG) === 0) {
            throw new EtcdDbError(this.path, `${where}: "${latin1(name)}" is not a bucket`);
          }
          return this.bucketFromValue(where, page.data.subarray(e.keyEnd, e.valueEnd));
        }
        return undefined;
      }
      if (page.flags !== BRANCH_PAGE) throw this.#typeError(page);
      if (depth >= MAX_TREE_DEPTH || seen.has(page.id)) throw this.#loopError(page);
      seen.add(page.id);
      let child = branchElement(page, 0).child;
      for (let i = 1; i < page.count; i++) {
        const e = branchElement(page, i);
        if (compareBytes(page.data.subarray(e.keyStart, e.keyEnd), name) > 0) break;
        child = e.child;
      }
      page = this.page(child);
    }
  }

  /**
   * The last key and value of a bucket (the right-most path: one page per tree level),
   * or undefined for an empty bucket. Empty leaves on the way are stepped over like bbolt's
   * `Cursor.Last`.
   * @throws {EtcdDbError} on damage along that path
   */
  lastEntry(bucket: BucketRef): { key: Uint8Array; value: Uint8Array; flags: number } | undefined {
    const seen = new Set<number>();
    const last = (page: Page, depth: number): ReturnType<BoltDb["lastEntry"]> => {
      this.#checkElements(page);
      if (page.flags === LEAF_PAGE) {
        if (page.count === 0) return undefined;
        const e = leafElement(page, page.count - 1);
        return {
          key: page.data.subarray(e.keyStart, e.keyEnd),
          value: page.data.subarray(e.keyEnd, e.valueEnd),
          flags: e.flags,
        };
      }
      if (page.flags !== BRANCH_PAGE) throw this.#typeError(page);
      if (depth >= MAX_TREE_DEPTH || seen.has(page.id)) throw this.#loopError(page);
      seen.add(page.id);
      for (let i = page.count - 1; i >= 0; i--) {
        const child = branchElement(page, i).child;
        if (seen.has(child)) throw this.#loopError(page);
        const found = last(this.page(child), depth + 1);
        if (found) return found;
      }
      return undefined;
    };
    return last(bucket.inline ?? this.page(bucket.root), 0);
  }

  /**
   * Visits every key/value of `bucket` in order, checking each page like `tx.Check()` does
   * (reachable once, inside the file, of a known type, elements inside the page, keys in
   * order). Problems go to `findings`; a damaged subtree is skipped, the walk goes on.
   * Sub-buckets are reported to `visit` with their header value; after this bucket, each is
   * walked in key order with the visitor `onBucket` returns for it (deeper ones are only
   * checked).
   */
  walk(
    bucket: BucketRef,
    findings: Findings,
    visit: EntryVisitor,
    onBucket?: (key: Uint8Array, bucket: BucketRef) => EntryVisitor | undefined,
    nesting = 0,
  ): void {
    let prevKey: Uint8Array | undefined;
    const nested: { key: Uint8Array; ref: BucketRef }[] = [];
    // One buffer per tree level: a page is done with before its next sibling is read.
    const buffers: PageBuffer[] = [];
    const leaf = (page: Page) => {
      for (let i = 0; i < page.count; i++) {
        const e = leafElement(page, i);
        const key = page.data.subarray(e.keyStart, e.keyEnd);
        const value = page.data.subarray(e.keyEnd, e.valueEnd);
        if (prevKey && compareBytes(prevKey, key) >= 0) {
          findings.add(`${describe(page)}: key of element ${i} is out of order`);
        }
        prevKey = key;
        visit(key, value, e.flags);
        if (e.flags & BUCKET_LEAF_FLAG) {
          try {
            // Copies: the page buffer is reused before sub-buckets are walked.
            const where = `${describe(page)} element ${i}`;
            nested.push({ key: key.slice(), ref: this.bucketFromValue(where, value.slice()) });
          } catch (error) {
            if (!(error instanceof EtcdDbError)) throw error;
            for (const p of error.problems) findings.add(p);
          }
        }
      }
      if (prevKey) prevKey = prevKey.slice();
    };
    const walkPage = (id: number, depth: number) => {
      let page: Page;
      try {
        page = this.page(id, buffers[depth] ??= pageBuffer());
      } catch (error) {
        if (!(error instanceof EtcdDbError)) throw error;
        for (const p of error.problems) findings.add(p);
        return;
      }
      for (let i = 0; i <= page.overflow; i++) {
        if (findings.reachable[id + i]) {
          findings.add(`page ${id + i}: multiple references`);
          return;
        }
      }
      findings.reachable.fill(1, id, id + page.overflow + 1);
      findings.reached += page.overflow + 1;
      if (findings.freed[id]) findings.add(`page ${id}: reachable freed`);
      const bad = this.#elementProblem(page);
      if (bad) return findings.add(bad);
      if (page.flags === LEAF_PAGE) return leaf(page);
      if (page.flags !== BRANCH_PAGE) {
        return findings.add(`page ${id}: invalid type ${pageType(page.flags)}`);
      }
      if (depth >= MAX_TREE_DEPTH) {
        return findings.add(`page ${id}: tree deeper than ${MAX_TREE_DEPTH} levels`);
      }
      let prevBranchKey: Uint8Array | undefined;
      for (let i = 0; i < page.count; i++) {
        const e = branchElement(page, i);
        const key = page.data.subarray(e.keyStart, e.keyEnd);
        if (prevBranchKey && compareBytes(prevBranchKey, key) >= 0) {
          findings.add(`page ${id}: key of element ${i} is out of order`);
        }
        prevBranchKey = key;
        walkPage(e.child, depth + 1);
      }
    };
    if (bucket.inline) {
      const bad = this.#elementProblem(bucket.inline);
      if (bad) findings.add(bad);
      else leaf(bucket.inline);
    } else {
      walkPage(bucket.root, 0);
    }
    for (const { key, ref } of nested) {
      if (nesting >= MAX_BUCKET_NESTING) {
        findings.add(`buckets nested deeper than ${MAX_BUCKET_NESTING} levels`);
        return;
      }
      this.walk(ref, findings, onBucket?.(key, ref) ?? (() => {}), undefined, nesting + 1);
    }
  }

  /**
   * Marks the persisted freelist (if any) in `findings`: its own pages reachable, its ids
   * freed, each id inside the file and freed once.
   */
  readFreelist(findings: Findings): void {
    const id = this.meta.freelist;
    if (id === undefined) return;
    let page: Page;
    try {
      page = this.page(id);
    } catch (error) {
      if (!(error instanceof EtcdDbError)) throw error;
      for (const p of error.problems) findings.add(`freelist ${p}`);
      return;
    }
    findings.reachable.fill(1, id, id + page.overflow + 1);
    findings.reached += page.overflow + 1;
    if (page.flags !== FREELIST_PAGE) {
      return findings.add(`page ${id}: freelist page has type ${pageType(page.flags)}`);
    }
    let count = page.count;
    let start = PAGE_HEADER_SIZE;
    if (count === 0xffff) {
      const n = readU64(page.view, start);
      count = Number.isSafeInteger(n) ? n : Infinity;
      start += 8;
    }
    if (start + count * 8 > page.data.length) {
      return findings.add(`page ${id}: freelist of ${count} ids does not fit in its page`);
    }
    for (let i = 0; i < count; i++) {
      const free = readU64(page.view, start + i * 8);
      if (!(free >= 2 && free < this.meta.pgid)) {
        findings.add(`page ${id}: freelist holds page ${free}, outside the file`);
      } else if (findings.freed[free]) {
        findings.add(`page ${free}: already freed`);
      } else {
        findings.freed[free] = 1;
      }
    }
  }

  /** After a full walk: with a persisted freelist, every page is reachable or free. */
  checkUnreachable(findings: Findings): void {
    findings.reachable[0] = 1;
    findings.reachable[1] = 1;
    if (this.meta.freelist === undefined) return;
    for (let i = 0; i < this.meta.pgid; i++) {
      if (!findings.reachable[i] && !findings.freed[i]) {
        findings.add(`page ${i}: unreachable unfreed`);
      }
    }
  }

  #checkElements(page: Page): void {
    const bad = this.#elementProblem(page);
    if (bad) throw new EtcdDbError(this.path, bad);
  }

  /** Element table and every element's key/value inside the page, or why not. */
  #elementProblem(page: Page): string | undefined {
    const where = describe(page);
    if (page.flags !== LEAF_PAGE && page.flags !== BRANCH_PAGE) {
      return `${where}: invalid type ${pageType(page.flags)}`;
    }
    const size = page.data.length;
    if (PAGE_HEADER_SIZE + page.count * ELEMENT_SIZE > size) {
      return `${where}: ${page.count} elements do not fit in ${size} bytes`;
    }
    if (page.flags === BRANCH_PAGE) {
      if (page.count === 0) return `${where}: branch page has no elements`;
      for (let i = 0; i < page.count; i++) {
        const e = branchElement(page, i);
        if (e.keyEnd > size) return `${where}: element ${i} runs past the end of the page`;
        if (!(e.child >= 2 && e.child < this.meta.pgid)) {
          return `${where}: element ${i} points to page ${e.child}, out of bounds (high-water mark ${this.meta.pgid})`;
        }
      }
      return undefined;
    }
    for (let i = 0; i < page.count; i++) {
      if (leafElement(page, i).valueEnd > size) {
        return `${where}: element ${i} runs past the end of the page`;
      }
    }
    return undefined;
  }

  #typeError(page: Page): EtcdDbError {
    return new EtcdDbError(this.path, `${describe(page)}: invalid type ${pageType(page.flags)}`);
  }

  #loopError(page: Page): EtcdDbError {
    return new EtcdDbError(this.path, `${describe(page)}: tree has a loop or is too deep`);
  }
}

/** bbolt's name for a page type: branch, leaf, meta, freelist or `unknown<xx>`. */
export function pageType(flags: number): string {
  if (flags & BRANCH_PAGE) return "branch";
  if (flags & LEAF_PAGE) return "leaf";
  if (flags & META_PAGE) return "meta";
  if (flags & FREELIST_PAGE) return "freelist";
  return `unknown<${flags.toString(16).padStart(2, "0")}>`;
}

/** Byte-wise comparison, like Go's `bytes.Compare`. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

/** Bytes as a string, one char per byte (for set keys and messages). */
export function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    // apply, not spread: no iterator protocol per byte.
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 4096) as unknown as number[]);
  }
  return s;
}

function describe(page: Page): string {
  return page.inline ? "inline bucket" : `page ${page.id}`;
}

/** Leaf element i: key at [keyStart, keyEnd), value at [keyEnd, valueEnd). Unchecked. */
function leafElement(page: Page, i: number) {
  const at = PAGE_HEADER_SIZE + i * ELEMENT_SIZE;
  const v = page.view;
  const keyStart = at + v.getUint32(at + 4, true);
  const keyEnd = keyStart + v.getUint32(at + 8, true);
  return {
    flags: v.getUint32(at, true),
    keyStart,
    keyEnd,
    valueEnd: keyEnd + v.getUint32(at + 12, true),
  };
}

/** Branch element i: key at [keyStart, keyEnd) and child page. Unchecked. */
function branchElement(page: Page, i: number) {
  const at = PAGE_HEADER_SIZE + i * ELEMENT_SIZE;
  const v = page.view;
  const keyStart = at + v.getUint32(at, true);
  return { keyStart, keyEnd: keyStart + v.getUint32(at + 4, true), child: readU64(v, at + 8) };
}

/** A u64 as a number; values past 2^53 become Infinity (always out of bounds). */
function readU64(view: DataView, at: number): number {
  const hi = view.getUint32(at + 4, true);
  if (hi >= 0x20_0000) return Infinity;
  return hi * TWO_POW_32 + view.getUint32(at, true);
}

function openProblem(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such file";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.IsADirectory) return "is a directory";
  return `cannot open: ${error instanceof Error ? error.message : String(error)}`;
}

/** Reads `into.length` bytes at `offset`; with `here`, the file is already there. */
function readInto(
  path: string,
  file: Deno.FsFile,
  offset: number,
  into: Uint8Array,
  here = false,
): void {
  try {
    if (!here) file.seekSync(offset, Deno.SeekMode.Start);
    let done = 0;
    while (done < into.length) {
      const n = file.readSync(into.subarray(done));
      if (n === null || n === 0) {
        throw new EtcdDbError(
          path,
          `file ends at byte ${offset + done}, ${into.length - done} bytes short of a page`,
        );
      }
      done += n;
    }
  } catch (error) {
    if (error instanceof EtcdDbError) throw error;
    throw new EtcdDbError(path, `cannot read at byte ${offset}: ${String(error)}`, {
      cause: error,
    });
  }
}

function readAt(path: string, file: Deno.FsFile, offset: number, length: number): Uint8Array {
  const buf = new Uint8Array(length);
  readInto(path, file, offset, buf);
  return buf;
}

/** FNV-1a 64 (Go's `hash/fnv.New64a`), the meta page checksum over page bytes 16..71. */
export function fnv1a64(bytes: Uint8Array): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n);
  return h;
}

function parseMeta(slot: 0 | 1, offset: number, buf: Uint8Array): MetaPage {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const m: MetaPage = { slot, offset, valid: false };
  const magic = view.getUint32(16, true);
  if (magic !== META_MAGIC) {
    m.problem = `bad magic 0x${magic.toString(16).padStart(8, "0")}`;
    return m;
  }
  const version = view.getUint32(20, true);
  if (version !== META_VERSION) {
    m.problem = `unsupported version ${version}`;
    return m;
  }
  const stored = view.getBigUint64(72, true);
  const computed = fnv1a64(buf.subarray(16, 16 + META_CHECKSUM_SPAN));
  if (stored !== computed) {
    m.problem = `checksum mismatch (stored 0x${stored.toString(16)}, computed 0x${
      computed.toString(16)
    })`;
    return m;
  }
  m.pageSize = view.getUint32(24, true);
  m.root = view.getBigUint64(32, true);
  m.freelist = view.getBigUint64(48, true);
  m.pgid = view.getBigUint64(56, true);
  m.txid = view.getBigUint64(64, true);
  const ps = m.pageSize;
  if (!(ps >= 512 && ps <= 1 << 20 && (ps & (ps - 1)) === 0)) {
    m.problem = `unusable page size ${ps}`;
    return m;
  }
  m.valid = true;
  return m;
}

/**
 * Reads both meta slots and picks the valid one with the higher txid (meta 0 on a tie, like
 * bbolt). When meta 0 is bad, meta 1 is looked for at `1024 << i` (bbolt ≥ 1.3.7).
 */
function chooseMeta(
  path: string,
  fileSize: number,
  read: (offset: number, length: number) => Uint8Array,
): { meta: Meta; metaPages: MetaPage[] } {
  const meta0 = parseMeta(0, 0, read(0, META_READ_SIZE));
  let meta1: MetaPage | undefined;
  if (!meta0.valid) {
    // The first candidate with the right magic tells best why nothing was found.
    let near: MetaPage | undefined;
    for (let i = 0; i < PROBE_STEPS; i++) {
      const pos = 1024 << i;
      if (fileSize - 1024 <= pos) break;
      const m = parseMeta(1, pos, read(pos, META_READ_SIZE));
      if (m.valid) {
        meta1 = m;
        break;
      }
      if (!near && !m.problem?.startsWith("bad magic")) near = m;
    }
    meta1 ??= near ?? { slot: 1, offset: -1, valid: false, problem: "not found at any page size" };
  } else {
    const pos = meta0.pageSize!;
    meta1 = pos + META_READ_SIZE <= fileSize ? parseMeta(1, pos, read(pos, META_READ_SIZE)) : {
      slot: 1,
      offset: pos,
      valid: false,
      problem: `missing: the file ends at byte ${fileSize}`,
    };
    if (meta1.valid && meta1.pageSize !== meta0.pageSize) {
      meta1.valid = false;
      meta1.problem = `page size ${meta1.pageSize} differs from meta page 0's ${meta0.pageSize}`;
    }
  }
  const metaPages = [meta0, meta1];
  const valid = metaPages.filter((m) => m.valid);
  if (valid.length === 0) {
    throw new EtcdDbError(
      path,
      `not a bbolt database: no valid meta page (meta page 0: ${meta0.problem}; meta page 1: ${meta1.problem})`,
    );
  }
  const chosen = valid.length === 2 && meta1.txid! > meta0.txid! ? meta1 : valid[0];
  const pageSize = chosen.pageSize!;
  const pgid = chosen.pgid!;
  const pages = Math.floor(fileSize / pageSize);
  if (pgid > BigInt(pages)) {
    throw new EtcdDbError(
      path,
      `file is cut short: meta page ${chosen.slot} says ${pgid} pages of ${pageSize} bytes (${
        pgid * BigInt(pageSize)
      } bytes), the file has ${fileSize} bytes`,
    );
  }
  if (pgid < 3n) {
    throw new EtcdDbError(path, `meta page ${chosen.slot}: high-water mark ${pgid} is too low`);
  }
  const root = chosen.root!;
  if (!(root >= 2n && root < pgid)) {
    throw new EtcdDbError(
      path,
      `meta page ${chosen.slot}: root page ${root} is out of bounds (high-water mark ${pgid})`,
    );
  }
  const freelist = chosen.freelist!;
  if (freelist !== NO_FREELIST && !(freelist >= 2n && freelist < pgid)) {
    throw new EtcdDbError(
      path,
      `meta page ${chosen.slot}: freelist page ${freelist} is out of bounds (high-water mark ${pgid})`,
    );
  }
  return {
    meta: {
      slot: chosen.slot,
      pageSize,
      root: Number(root),
      freelist: freelist === NO_FREELIST ? undefined : Number(freelist),
      pgid: Number(pgid),
      txid: chosen.txid!,
    },
    metaPages,
  };
}
