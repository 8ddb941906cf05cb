/// <reference lib="deno.worker" />
/**
 * Runs one read of the native db reader, or the sha256 of a copy, off the main thread (see
 * `workerReader` in `lib/recovery/copies.ts`): the read is synchronous page by page, and a multi-GB copy
 * would otherwise hold the event loop, and with it Ctrl-C, for seconds; and copies are hashed
 * side by side on as many cores as there are.
 *
 * Message in: a `DbOp` (lib/recovery/copies.ts). Message out: a `DbReply`: `{ result }`,
 * or `{ error: { path, problems } }` for the reader's own refusal (`EtcdDbError`), or
 * `{ error: { message } }` for anything else.
 */

import { EtcdDbError, keyHistoryHash, readStatus } from "./etcd_db.ts";
import { COMPARE_CRC, type DbOp, type DbReply } from "./reader.ts";
import { sha256FileSync } from "./sha256.ts";

function run(m: DbOp): Promise<unknown> {
  switch (m.op) {
    case "status":
      return readStatus(m.path, {
        history: m.history,
        historyCrc: COMPARE_CRC,
        etcdHash: m.etcdHash,
      });
    case "history":
      return keyHistoryHash(m.path, m.uptoRevision, m.sinceRevision, COMPARE_CRC);
    case "sha256":
      return Promise.resolve(sha256FileSync(m.path));
  }
}

self.onmessage = async (event: MessageEvent<DbOp>) => {
  let reply: DbReply;
  try {
    reply = { result: await run(event.data) };
  } catch (error) {
    reply = {
      error: error instanceof EtcdDbError
        ? { path: error.path, problems: error.problems }
        : { message: error instanceof Error ? error.message : String(error) },
    };
  }
  self.postMessage(reply);
};
