/// <reference lib="deno.worker" />
// A db worker that never answers: once it gets a read it writes PATH.spinning, then keeps a
// core busy in 20 ms slices between which terminate() can stop it (tests/db_worker_test.ts).
self.onmessage = async (event: MessageEvent<{ path: string }>) => {
  Deno.writeTextFileSync(`${event.data.path}.spinning`, "");
  for (;;) {
    const until = performance.now() + 20;
    while (performance.now() < until) {
      // busy
    }
    await new Promise((r) => setTimeout(r, 0));
  }
};
