/**
 * CRC-32C and CRC-32: the check values, updates in pieces at every alignment, and the
 * combine/suffix algebra the one-pass history hash relies on, for both polynomials (CRC-32 is
 * the native one the copies are compared with).
 */

import assert from "node:assert/strict";
import { crc32c, crc32cCombine, crc32cSuffix, crc32cUpdate } from "../lib/db/crc32c.ts";
import { CRC32, crc32Update } from "../lib/db/crc32.ts";

/** A bitwise CRC (CRC-32C by default), the definition itself: slow, obviously right. */
function reference(data: Uint8Array, poly = 0x82f63b78): number {
  let c = 0xffffffff;
  for (const byte of data) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) out[i] = (x = (Math.imul(x, 1103515245) + 12345) | 0) >>> 24;
  return out;
}

Deno.test("crc32c() gives the Castagnoli check value and matches the bitwise definition", () => {
  assert.equal(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  const data = bytes(5000, 1);
  // Every start alignment and lengths around the 64-byte word-at-a-time threshold.
  for (const offset of [0, 1, 2, 3]) {
    for (const length of [0, 1, 63, 64, 65, 67, 128, 1000, 4096]) {
      const slice = data.subarray(offset, offset + length);
      assert.equal(crc32c(slice), reference(slice), `offset ${offset}, length ${length}`);
    }
  }
});

Deno.test("crc32cUpdate() over pieces equals crc32c() over the whole", () => {
  const data = bytes(10_000, 2);
  const whole = crc32c(data);
  for (const cuts of [[0], [1, 2, 3], [63, 64, 200], [4999, 5000, 9999], [10_000]]) {
    let crc = 0;
    let at = 0;
    for (const cut of [...cuts, data.length]) {
      crc = crc32cUpdate(crc, data.subarray(at, cut));
      at = cut;
    }
    assert.equal(crc, whole, `cut at ${cuts}`);
  }
});

Deno.test("crc32cCombine() and crc32cSuffix() join and split checksums at any point", () => {
  const data = bytes(3 << 20, 3); // 3 MiB: lengths with high bits set
  const whole = crc32c(data);
  for (const cut of [0, 1, 17, 4096, 1 << 20, (3 << 20) - 1, 3 << 20]) {
    const a = crc32c(data.subarray(0, cut));
    const b = crc32c(data.subarray(cut));
    const lengthB = data.length - cut;
    assert.equal(crc32cCombine(a, b, lengthB), whole, `combine at ${cut}`);
    assert.equal(crc32cSuffix(whole, a, lengthB), b, `suffix at ${cut}`);
  }
});

Deno.test("CRC-32 (native above 64 bytes, a table below) gives the IEEE check value and the bitwise definition, in pieces too", () => {
  const ieee = (d: Uint8Array) => reference(d, 0xedb88320);
  assert.equal(crc32Update(0, new TextEncoder().encode("123456789")), 0xcbf43926);
  assert.equal(crc32Update(0, new Uint8Array(0)), 0);
  const data = bytes(5000, 4);
  for (const offset of [0, 1, 3]) {
    for (const length of [0, 1, 17, 18, 63, 64, 65, 1000, 4096]) {
      const slice = data.subarray(offset, offset + length);
      assert.equal(crc32Update(0, slice), ieee(slice), `offset ${offset}, length ${length}`);
    }
  }
  // pieces either side of the native threshold, as keys (17 bytes) and values alternate
  let crc = 0;
  let at = 0;
  for (const n of [17, 4000, 18, 63, 64, 1, 837]) {
    crc = CRC32.update(crc, data.subarray(at, at + n));
    at += n;
  }
  assert.equal(crc, ieee(data));
});

Deno.test("CRC-32's combine() and suffix() join and split checksums at any point", () => {
  const data = bytes(3 << 20, 5);
  const whole = CRC32.update(0, data);
  for (const cut of [0, 1, 17, 4096, 1 << 20, (3 << 20) - 1, 3 << 20]) {
    const a = CRC32.update(0, data.subarray(0, cut));
    const b = CRC32.update(0, data.subarray(cut));
    const lengthB = data.length - cut;
    assert.equal(CRC32.combine(a, b, lengthB), whole, `combine at ${cut}`);
    assert.equal(CRC32.suffix(whole, a, lengthB), b, `suffix at ${cut}`);
  }
});
