/** Free TCP ports on 127.0.0.1 for etcd members started by the lab, tests and benches. */

function portFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

/**
 * A base port with `count` free ports after it, between 20000 and 30000: below Linux's
 * ephemeral range (32768+), so no outgoing connection of this or another process can hold it
 * by the time etcd binds, and a member dialling a peer that is not up yet cannot connect to
 * itself.
 */
export function pickPorts(count: number): number {
  for (let attempt = 0; attempt < 100; attempt++) {
    const base = 20_000 + 2 * Math.floor(Math.random() * 5_000);
    let free = true;
    for (let p = base; p < base + count && free; p++) free = portFree(p);
    if (free) return base;
  }
  throw new Error("No free ports between 20000 and 30000 on 127.0.0.1");
}
