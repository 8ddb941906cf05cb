/**
 * ByteSet against a `Set<string>` model: the live count of `snapshot status` (3.6 meaning)
 * depends on it being exact, whatever the keys and however often they come back.
 */

import assert from "node:assert/strict";
import { ByteSet } from "../lib/db/byte_set.ts";
import { mulberry32 } from "./random.ts";

/** One char per byte: distinct byte strings give distinct strings. */
const asString = (bytes: Uint8Array) => Array.from(bytes, (b) => String.fromCharCode(b)).join("");

Deno.test("ByteSet counts live and distinct keys exactly like a Set over 300,000 random marks", () => {
  // Short keys over all 256 byte values (many repeats, so puts, deletes and re-puts of the same
  // key), plus long ones: the tables grow many times and probe chains cross.
  const random = mulberry32(42);
  const set = new ByteSet();
  const live = new Set<string>();
  const seen = new Set<string>();
  for (let i = 0; i < 300_000; i++) {
    const length = random() < 0.01 ? Math.floor(random() * 5000) : Math.floor(random() * 4);
    const key = Uint8Array.from({ length }, () => Math.floor(random() * 256));
    const alive = random() < 0.7;
    set.mark(key, alive);
    const s = asString(key);
    seen.add(s);
    if (alive) live.add(s);
    else live.delete(s);
  }
  assert.ok(seen.size > 100_000, `only ${seen.size} distinct keys`);
  assert.equal(set.size, seen.size);
  assert.equal(set.live, live.size);
});

Deno.test("ByteSet tells apart keys that are prefixes of each other, empty, or huge", () => {
  const set = new ByteSet();
  const enc = new TextEncoder();
  set.mark(new Uint8Array(0), true);
  set.mark(enc.encode("/registry/pods"), true);
  set.mark(enc.encode("/registry/pods/a"), true);
  set.mark(enc.encode("/registry/pod"), false);
  const huge = new Uint8Array(8 << 20).fill(0x80); // bigger than the first arena (4 MiB)
  set.mark(huge, true);
  set.mark(huge.slice(), false); // the same bytes in another buffer: the same key
  assert.equal(set.size, 5);
  assert.equal(set.live, 3);
  set.mark(enc.encode("/registry/pod"), true); // a deleted key put back
  set.mark(enc.encode("/registry/pods"), true); // a live key put again
  assert.equal(set.size, 5);
  assert.equal(set.live, 4);
});
