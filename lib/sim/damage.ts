/**
 * Damage a member's db file the way a failing disk does: a few bits flipped inside one value
 * on a leaf page of the `key` bucket. Page headers, element tables, keys and the bucket tree
 * are left as they are, so bbolt (and etcd) still read the file; only that revision's value
 * differs, which etcd's hash of the key history (and `lib/recovery/copies.ts`) sees.
 *
 * The walk is bbolt's format (`lib/db/bbolt.ts` reads it in full): the newer valid meta page,
 * the root bucket's leaf entry `key`, then branch pages down to the leftmost leaves.
 */

import { readFileSync, writeFileSync } from "node:fs";

const HEADER = 16;
const ELEMENT = 16;
const BRANCH = 0x01;
const LEAF = 0x02;
const BUCKET_FLAG = 0x01;

export interface Damage {
  /** Byte offset in the file of the first flipped byte. */
  offset: number;
  /** Bytes flipped (each by its lowest bit). */
  bytes: number;
  /** The page the value is on. */
  page: number;
}

/**
 * Flips the lowest bit of `count` bytes inside the value of one entry of the `key` bucket
 * (the first leaf entry whose value holds a run of `count` equal bytes `marker`, e.g. the
 * lab's `xxxx…` padding). Throws when the file has no such entry.
 */
export function damageValue(path: string, marker = "x", count = 8): Damage {
  const buf = readFileSync(path);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const u32 = (o: number) => dv.getUint32(o, true);
  const u16 = (o: number) => dv.getUint16(o, true);
  const u64 = (o: number) => Number(dv.getBigUint64(o, true));
  const pageSize = u32(HEADER + 8);
  // the meta page with the higher txid is the current one
  const metas = [0, 1].map((p) => p * pageSize + HEADER).filter((o) => u32(o) === 0xed0cdaed);
  if (metas.length === 0) throw new Error(`${path}: no bbolt meta page`);
  const meta = metas.sort((a, b) => u64(b + 48) - u64(a + 48))[0];
  const rootBucket = u64(meta + 16);

  const leafEntries = function* (page: number): Generator<[number, Uint8Array, number, number]> {
    const at = page * pageSize;
    const flags = u16(at + 8);
    const count = u16(at + 10);
    if (flags & BRANCH) {
      for (let i = 0; i < count; i++) yield* leafEntries(u64(at + HEADER + i * ELEMENT + 8));
      return;
    }
    if (!(flags & LEAF)) return;
    for (let i = 0; i < count; i++) {
      const e = at + HEADER + i * ELEMENT;
      const kstart = e + u32(e + 4);
      const key = buf.subarray(kstart, kstart + u32(e + 8));
      yield [u32(e), key, kstart + key.length, u32(e + 12)];
    }
  };
  let keyBucket: number | undefined;
  for (const [flags, key, vstart] of leafEntries(rootBucket)) {
    if (flags & BUCKET_FLAG && new TextDecoder().decode(key) === "key") keyBucket = u64(vstart);
  }
  if (!keyBucket) throw new Error(`${path}: no "key" bucket with its own pages`);
  const run = new TextEncoder().encode(marker.repeat(count));
  for (const [flags, , vstart, vsize] of leafEntries(keyBucket)) {
    if (flags & BUCKET_FLAG) continue;
    const value = buf.subarray(vstart, vstart + vsize);
    const i = indexOf(value, run);
    if (i < 0) continue;
    const offset = vstart + i;
    for (let j = 0; j < count; j++) buf[offset + j] ^= 0x01;
    writeFileSync(path, buf);
    return { offset, bytes: count, page: Math.floor(offset / pageSize) };
  }
  throw new Error(
    `${path}: no value in the "key" bucket holds ${JSON.stringify(marker)} x${count}`,
  );
}

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
