/**
 * Byte sizes as etcd and talosctl print them (go-humanize `Bytes`, SI units).
 *
 * Go's `%.0f` rounds exact ties to even (262.5 → "262"); JavaScript's `toFixed(0)`
 * rounds them up, so ties are handled here by hand to print the same text as etcd.
 *
 * @example
 * ```ts
 * import { humanizeBytes } from "./humanize.ts";
 * humanizeBytes(745472); // "746 kB"
 * ```
 */

const SUFFIXES = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];

/** Formats `bytes` exactly like go-humanize 1.0 `Bytes` (base 1000). */
export function humanizeBytes(bytes: number): string {
  if (bytes < 10) return `${bytes} B`;
  const e = Math.floor(Math.log(bytes) / Math.log(1000));
  const suffix = SUFFIXES[e];
  const val = Math.floor((bytes / 1000 ** e) * 10 + 0.5) / 10;
  return val >= 10 ? `${roundHalfEven(val)} ${suffix}` : `${val.toFixed(1)} ${suffix}`;
}

function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (Math.abs(diff - 0.5) < 1e-9) return floor % 2 === 0 ? floor : floor + 1;
  return Math.round(x);
}
