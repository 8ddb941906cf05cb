/**
 * The algebra of a reflected 32-bit CRC (zlib's `crc32_combine`, for any polynomial): join two
 * checksums, or take one stretch's checksum out of a running one, from lengths alone.
 */

export interface CrcAlgebra {
  /** The CRC of A followed by B, from the CRC of A, the CRC of B and B's length. */
  combine(crcA: number, crcB: number, lengthB: number): number;
  /** The CRC of B alone, from the CRC of A followed by B, the CRC of A, and B's length. */
  suffix(crcAB: number, crcA: number, lengthB: number): number;
}

/** A CRC-32 variant: its name, its running update (like Go's `hash.Hash32`), its algebra. */
export interface Crc extends CrcAlgebra {
  readonly name: "crc32" | "crc32c";
  /** Continues the finished checksum `crc` (0 for nothing yet) over `data`. */
  update(crc: number, data: Uint8Array): number;
}

/** The algebra of the CRC with the bit-reflected polynomial `poly` (0x82f63b78: CRC-32C). */
export function crcAlgebra(poly: number): CrcAlgebra {
  /** a × b modulo the polynomial, bit-reflected (zlib's `multmodp`). */
  const multModP = (a: number, b: number): number => {
    let p = 0;
    for (let m = 0x8000_0000; m !== 0; m >>>= 1) {
      if (a & m) {
        p ^= b;
        if ((a & (m - 1)) === 0) break;
      }
      b = b & 1 ? (b >>> 1) ^ poly : b >>> 1;
    }
    return p >>> 0;
  };
  // x^(2^n) mod P for n = 0..31 (zlib's `x2n_table`).
  const x2n = new Int32Array(32);
  let p = 1 << 30; // x^1
  x2n[0] = p;
  for (let n = 1; n < 32; n++) x2n[n] = p = multModP(p, p);
  /** What a CRC of A turns into when `length` bytes follow A (zlib's `x2nmodp` step). */
  const shift = (crc: number, length: number): number => {
    let q = 0x8000_0000; // x^0
    for (let n = length, k = 3; n > 0; n = Math.floor(n / 2), k++) {
      if (n % 2) q = multModP(x2n[k & 31], q);
    }
    return multModP(q, crc);
  };
  return {
    combine: (crcA, crcB, lengthB) => (shift(crcA, lengthB) ^ crcB) >>> 0,
    suffix: (crcAB, crcA, lengthB) => (shift(crcA, lengthB) ^ crcAB) >>> 0,
  };
}
