/**
 * The fault matrix: every talosctl (and etcdutl, kubectl) call that a whole `recover` makes
 * is, in turn, answered with a realistic error, left hanging past its deadline, or answered
 * with unparseable output. For each cell: the exit code, that no command changing the cluster
 * followed a failed check, and that the journal and the report say what happened.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { main as recover } from "../tasks/recover.ts";
import { fakeWorld, type Recording } from "./replay.ts";
import { afterRecs, fullRecoveryRecs, NODES_FLAG, tempOut, VIP } from "./scenario.ts";

const MUTATING = / reset | bootstrap | alarm disarm| reboot /;

function happyPath(out: string): Recording[] {
  return fullRecoveryRecs(out);
}

type Fault = "error" | "hang" | "garbage";

function faulty(rec: Recording, fault: Fault): Recording {
  const node = rec.cmd.split(" ")[2] ?? "?";
  const cmd = { cmd: rec.cmd, like: rec.like }; // the backup's name is the run's clock
  switch (fault) {
    case "error":
      return {
        ...cmd,
        stderr:
          `error: 1 error occurred:\n\t* ${node}: rpc error: code = Internal desc = injected failure\n\n\n`,
        code: 1,
      };
    case "hang":
      return { ...cmd, hang: true };
    case "garbage":
      return {
        ...cmd,
        stdout: "\u0000\u0001 not a table {]\n",
        effect(c) {
          rec.effect?.call({ ...rec }, c); // its file, if any, but not its answer
        },
      };
  }
}

const size = happyPath("/x").length;
/** The first call of the after part: from there on, etcd is recovered whatever fails. */
const afterStart = size - afterRecs("/x").length;

for (const fault of ["error", "hang", "garbage"] as Fault[]) {
  Deno.test(`fault matrix: each of the ${size} calls of recover answering with ${fault}`, async () => {
    let cells = 0;
    for (let i = 0; i < size; i++) {
      const out = tempOut();
      const recordings = happyPath(out);
      const target = recordings[i];
      recordings[i] = faulty(target, fault);
      // After a fault, polls may ask again: those later calls are answered "unexpected"
      // (exit 99), which must be handled as an error too; so recordings may stay unused.
      for (const r of recordings) r.optional = true;
      const w = fakeWorld(recordings);
      w.deps.callDeadlineCapMs = 100;
      const code = await recover([
        ...NODES_FLAG,
        "--vip",
        VIP,
        "--out",
        out,
        "--yes",
        "--timeout",
        "1m",
      ], w.deps);
      const where = `call ${i} (${target.cmd}) answered with ${fault}`;
      const calls = w.replay.calls;
      const at = calls.findIndex((c) => target.like ? target.like.test(c) : c === target.cmd);
      if (code === 0) {
        // tolerated faults only: the call was retried or its answer was not needed
        assert.match(w.stderr(), /recovered:/, where);
        if (Deno.env.get("SHOW_TOLERATED")) console.log(`tolerated: ${where}`);
      } else {
        assert.ok([1, 2].includes(code), `${where}: exit ${code}\n${w.stderr()}`);
        const report = readFileSync(join(out, "report.md"), "utf8");
        assert.match(report, new RegExp(`failed \\(exit ${code}\\)`), where);
        const journal = readFileSync(join(out, "journal.jsonl"), "utf8");
        if (at >= 0 && !/^etcdutl|^kubectl/.test(target.cmd)) {
          assert.ok(
            journal.includes(JSON.stringify(calls[at]).slice(1, -1)),
            `${where}: not journaled`,
          );
        }
        if (!MUTATING.test(target.cmd) && at >= 0) {
          // a failed check is never followed by a command that changes the cluster, except
          // the checks that are retried by design (polls) and then succeed
          const later = calls.slice(at + 1).filter((c) => MUTATING.test(c));
          const retriedAndPassed = calls.slice(at + 1).includes(target.cmd);
          // one node's `etcd status` before the wipe is evidence, shown as such: the other
          // nodes' answers decide whether the cluster is healthy
          const node = target.cmd.split(" ")[2];
          const shownAsEvidence = / etcd status$/.test(target.cmd) &&
            w.stderr().includes(`${node}: etcd status did not answer`);
          assert.ok(
            later.length === 0 || retriedAndPassed || shownAsEvidence,
            `${where}: then ran ${later.join(", ")}`,
          );
        }
        if (code === 1) assert.match(w.stderr(), /cluster state: /, where);
        if (i >= afterStart) {
          // the after part failed: etcd itself is recovered, and the message says so
          assert.match(
            w.stderr(),
            /error: etcd is recovered \(recovered: etcd restored from /,
            where,
          );
          assert.match(w.stderr(), /to continue: deno task after .*--seed 192\.168\.53\.11/, where);
        }
      }
      cells++;
    }
    assert.equal(cells, size);
  });
}
