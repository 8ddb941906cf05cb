/** sha256 of a db file, read in chunks (db files can be gigabytes). */

import { createHash } from "node:crypto";

/** sha256 of a file, read in chunks (db files can be gigabytes). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path, { read: true });
  const buf = new Uint8Array(1 << 20);
  while (true) {
    const n = await file.read(buf);
    if (n === null) break;
    hash.update(buf.subarray(0, n));
  }
  return hash.digest("hex");
}

/**
 * `sha256File` with blocking reads: 10-20% less CPU, for a worker thread only (on the main
 * thread it would hold Ctrl-C for the whole file).
 */
export function sha256FileSync(path: string): string {
  const hash = createHash("sha256");
  using file = Deno.openSync(path, { read: true });
  const buf = new Uint8Array(1 << 20);
  while (true) {
    const n = file.readSync(buf);
    if (n === null) break;
    hash.update(buf.subarray(0, n));
  }
  return hash.digest("hex");
}
