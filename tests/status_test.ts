import assert from "node:assert/strict";
import { appendFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { main as status } from "../tasks/02_status.ts";
import { main as wipe } from "../tasks/03_wipe.ts";
import { main as extract } from "../tasks/01_extract.ts";
import { fakeWorld, TORN } from "./replay.ts";
import { InterruptedError } from "../lib/run/errors.ts";
import {
  extractRecs,
  makeCopies,
  NODES,
  NODES_FLAG,
  preflightRecs,
  rec,
  SEED,
  statusRecs,
  tempOut,
} from "./scenario.ts";

Deno.test("status reads copies put in OUT by hand (no manifest), marked unverified", async () => {
  const out = tempOut();
  makeCopies(out);
  rmSync(join(out, "manifest.json"));
  const w = fakeWorld(statusRecs(out));
  const code = await status(["--out", out], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.equal(w.stdout(), "192.168.53.11\n");
  assert.match(w.stderr(), /no manifest\.json in .*: the copies are read but not verified/);
  assert.match(
    w.stderr(),
    /192\.168\.53\.11\s+1843517\s+8123\s+48 MB\s+CORRUPT\s+unverified\s+yes\s+seed/,
  );
  // etcdctl's HASH only with --etcd-hash: nothing is decided on it
  assert.match(w.stderr(), /NODE +REVISION +KEYS +SIZE +ALARMS +INTACT +AGREES +NOTE/);
});

Deno.test("wipe refuses copies without a manifest and says extract records them", async () => {
  const out = tempOut();
  makeCopies(out);
  rmSync(join(out, "manifest.json"));
  const w = fakeWorld(preflightRecs());
  const code = await wipe([...NODES_FLAG, "--out", out, "--yes"], w.deps);
  assert.equal(code, 2);
  w.replay.assertDone();
  assert.match(w.stderr(), /No recorded copies in .*manifest\.json is missing/);
  assert.match(
    w.stderr(),
    /run deno task extract --nodes 192\.168\.53\.10,192\.168\.53\.11,192\.168\.53\.12 --out/,
  );
  assert.deepEqual(w.replay.callsMatching(/ reset /), []);

  // extract then records them without copying again
  const x = fakeWorld([]);
  assert.equal(await extract([...NODES_FLAG, "--out", out], x.deps), 0, x.stderr());
  assert.deepEqual(x.replay.calls, []);
  assert.match(x.stderr(), /exists but is not in the manifest; keeping it as the copy/);
});

const [N10, , N12] = NODES;

Deno.test("a copy the reader refuses shows INTACT no, status says what to do, wipe refuses it", async () => {
  const out = tempOut();
  const torn = `${TORN} half of the db`;
  const x = fakeWorld([
    ...extractRecs(out).slice(0, 2),
    rec.cp(out, N12, torn),
    rec.cp(out, N12, torn),
  ]);
  assert.equal(await extract([...NODES_FLAG, "--out", out], x.deps), 1, x.stderr());

  // etcdutl is asked about the two readable copies only.
  const w = fakeWorld(statusRecs(out, [N10, SEED]));
  const code = await status(["--out", out], w.deps);
  assert.equal(code, 2, w.stderr());
  w.replay.assertDone();
  // No seed for `SEED=$(deno task status …)`: the torn copy might be the newest.
  assert.equal(w.stdout(), "");
  assert.match(
    w.stderr(),
    /No seed named: no usable copy from "192\.168\.53\.12", which might hold the newest data \(the best readable copy is "192\.168\.53\.11" at revision \d+\)/,
  );
  assert.match(w.stderr(), /or pass --force to name the best readable copy anyway/);
  assert.doesNotMatch(
    w.stderr(),
    /^192\.168\.53\.11 .*\bseed\b/m,
    "no row is marked seed while the seed is withheld",
  );
  assert.match(
    w.stderr(),
    /192\.168\.53\.12\s+-\s+-\s+-\s+-\s+no\s+-\s+Cannot read etcd db .*file is cut short/,
  );
  assert.match(
    w.stderr(),
    /warning: the copy from "192\.168\.53\.12" cannot be used \(see NOTE\): to copy it again, extract into a new --out/,
  );
  assert.match(
    w.stderr(),
    /warning: wipe and recover refuse without --force while a node has no usable copy/,
  );
  assert.doesNotMatch(
    w.stderr(),
    /run extract again with the same --out/,
    "it would keep the torn copy",
  );
  const json = fakeWorld(statusRecs(out, [N10, SEED]));
  assert.equal(await status(["--out", out, "--json"], json.deps), 2);
  const parsed = JSON.parse(json.stdout());
  assert.equal(parsed.seed, null);
  assert.match(parsed.seedWithheld, /^No seed named: no usable copy from "192\.168\.53\.12"/);
  const copies = parsed.copies as { node: string; intact: boolean }[];
  assert.deepEqual(copies.map((c) => [c.node, c.intact]), [[N10, true], [SEED, true], [
    N12,
    false,
  ]]);

  const forced = fakeWorld(statusRecs(out, [N10, SEED]));
  assert.equal(await status(["--out", out, "--force"], forced.deps), 0, forced.stderr());
  assert.equal(forced.stdout(), `${SEED}\n`);
  assert.match(
    forced.stderr(),
    /warning: naming the best readable copy, "192\.168\.53\.11" at revision \d+, without "192\.168\.53\.12" because of --force/,
  );

  const wiped = fakeWorld([...preflightRecs(), ...statusRecs(out, [N10, SEED])]);
  assert.equal(await wipe([...NODES_FLAG, "--out", out, "--yes"], wiped.deps), 2, wiped.stderr());
  assert.match(
    wiped.stderr(),
    /Refusing to wipe: no usable copy from "192\.168\.53\.12" \(.*cut short/,
  );
  assert.match(
    wiped.stderr(),
    /next: extract into a new --out for a copy that cannot be used \(none is overwritten\); or pass --force to go on without it/,
  );
  assert.deepEqual(wiped.replay.callsMatching(/ reset /), []);
});

Deno.test("status: a node without a copy is copied by extract on the same --out; after a wipe, no advice to copy", async () => {
  const out = tempOut();
  makeCopies(out);
  rmSync(join(out, `db.${N12}`), { recursive: true });
  const w = fakeWorld(statusRecs(out, [N10, SEED]));
  assert.equal(await status(["--out", out], w.deps), 2, w.stderr());
  w.replay.assertDone();
  assert.match(
    w.stderr(),
    /warning: no copy from "192\.168\.53\.12": run extract again with the same --out \(it copies only the nodes without one\)/,
  );
  assert.doesNotMatch(w.stderr(), /new --out/);

  // Once the journal records a wipe, the nodes have nothing left to copy.
  appendFileSync(
    join(out, "journal.jsonl"),
    JSON.stringify({ ts: "2026-11-24T10:05:00.000Z", type: "step", step: "wipe", event: "ok" }) +
      "\n",
  );
  const after = fakeWorld(statusRecs(out, [N10, SEED]));
  assert.equal(await status(["--out", out], after.deps), 2, after.stderr());
  assert.match(
    after.stderr(),
    /the nodes were already wiped, so these copies are all there is: pass --force to name the best of them/,
  );
  assert.match(
    after.stderr(),
    /warning: no usable copy from "192\.168\.53\.12" \(see NOTE\); the nodes were already wiped .*: these copies are all there is/,
  );
  assert.doesNotMatch(after.stderr(), /run extract/);
});

for (const op of ["span", "status", "history"] as const) {
  Deno.test(`status: Ctrl-C in the reader's ${op}() stops with exit 130, not as an unreadable copy`, async () => {
    const out = tempOut();
    makeCopies(out);
    const w = fakeWorld(statusRecs(out).slice(0, op === "span" ? 0 : 3));
    const reader = w.deps.db;
    const stop = (path: string) =>
      Promise.reject(new InterruptedError(`Interrupted while reading ${path}`));
    w.deps.db = {
      span: (path) => op === "span" && path.includes(N12) ? stop(path) : reader.span(path),
      status: (path, range) =>
        op === "status" && path.includes(N12) ? stop(path) : reader.status(path, range),
      history: (path, upto, since) =>
        op === "history" && path.includes(N12) ? stop(path) : reader.history(path, upto, since),
    };
    const code = await status(["--out", out], w.deps);
    assert.equal(code, 130, w.stderr());
    assert.match(w.stderr(), /error: Interrupted while reading .*db\.192\.168\.53\.12\/db/);
    assert.doesNotMatch(w.stderr(), /no usable copy|cannot be used|could not be compared|seed:/);
    assert.equal(w.stdout(), "", "no seed printed");
  });
}

Deno.test("status --json names a copy that could not be read as not compared, with the reason, and the table shows it beside AGREES", async () => {
  const out = tempOut();
  const torn = `${TORN} half of the db`;
  const x = fakeWorld([
    ...extractRecs(out).slice(0, 2),
    rec.cp(out, N12, torn),
    rec.cp(out, N12, torn),
  ]);
  assert.equal(await extract([...NODES_FLAG, "--out", out], x.deps), 1, x.stderr());
  const w = fakeWorld(statusRecs(out, [N10, SEED]));
  assert.equal(await status(["--out", out, "--json", "--force"], w.deps), 0, w.stderr());
  w.replay.assertDone();
  const json = JSON.parse(w.stdout());
  assert.equal(json.agreement.compared, true);
  assert.equal(json.agreement.allAgree, false, "one copy was not compared");
  assert.deepEqual(json.agreement.majority, [N10, SEED], "2 of 3 nodes");
  assert.equal(json.agreement.notCompared.length, 1);
  assert.equal(json.agreement.notCompared[0].node, N12);
  assert.match(json.agreement.notCompared[0].reason, /^no usable copy \(Cannot read .*cut short/);
  assert.deepEqual(json.copies.map((c: { agrees: string }) => c.agrees), ["yes", "yes", "-"]);
  assert.match(json.copies[2].notCompared, /^no usable copy/);
  assert.match(w.stderr(), /192\.168\.53\.12\s+-\s+-\s+-\s+-\s+no\s+-\s+Cannot read etcd db/);
  assert.match(
    w.stderr(),
    /the compared copies agree on revisions 1-\d+ \(192\.168\.53\.10, 192\.168\.53\.11\)/,
  );
  assert.doesNotMatch(w.stderr(), /every copy agrees/);
});

Deno.test("status says so when the histories could not be hashed; wipe refuses without --force, naming why", async () => {
  const out = tempOut();
  makeCopies(out);
  const failing = (w: ReturnType<typeof fakeWorld>) => {
    const reader = w.deps.db;
    w.deps.db = {
      ...reader,
      history: (path, upto, since) =>
        path.includes(N12)
          ? Promise.reject(new Error(`Cannot read etcd db "${path}": page 7: invalid type`))
          : reader.history(path, upto, since),
    };
  };
  const w = fakeWorld(statusRecs(out));
  failing(w);
  assert.equal(await status(["--out", out, "--json"], w.deps), 0, w.stderr());
  const json = JSON.parse(w.stdout());
  assert.equal(json.agreement.compared, false);
  assert.match(
    json.agreement.reason,
    /^the histories could not be hashed: Cannot read etcd db .*page 7/,
  );
  assert.deepEqual(json.copies.map((c: { agrees: string }) => c.agrees), ["-", "-", "-"]);
  for (const c of json.copies) assert.equal(c.notCompared, json.agreement.reason);
  assert.match(
    w.stderr(),
    /the copies' histories were NOT compared: the histories could not be hashed/,
  );
  assert.match(
    w.stderr(),
    /192\.168\.53\.11 .* -  +seed; not compared: the histories could not be hashed/,
  );

  const wiped = fakeWorld([...preflightRecs(), ...statusRecs(out)]);
  failing(wiped);
  assert.equal(await wipe([...NODES_FLAG, "--out", out, "--yes"], wiped.deps), 2, wiped.stderr());
  wiped.replay.assertDone();
  assert.match(
    wiped.stderr(),
    /Refusing to wipe: the copies' histories were not compared: the histories could not be hashed: Cannot read etcd db .*page 7/,
  );
  assert.deepEqual(wiped.replay.callsMatching(/ reset /), []);
});
