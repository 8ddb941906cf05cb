/// <reference lib="deno.worker" />
// A db worker that answers every read with the id it drew when it started, so a test can tell
// whether reads went to the same worker (tests/db_worker_reuse_test.ts).
const id = crypto.randomUUID();
self.onmessage = () => self.postMessage({ result: { id } });
