import assert from "node:assert/strict";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { main as status } from "../tasks/02_status.ts";
import { main as wipe } from "../tasks/03_wipe.ts";
import { main as recover } from "../tasks/recover.ts";
import { main as extract } from "../tasks/01_extract.ts";
import { main as diagnose } from "../tasks/diagnose.ts";
import { fakeWorld } from "./replay.ts";
import { NODES, NODES_FLAG, rec, SEED, tempOut, VIP } from "./scenario.ts";

type Main = (args: string[], deps: ReturnType<typeof fakeWorld>["deps"]) => Promise<number>;

const TASKS: [string, Main][] = [["wipe", wipe], ["recover", recover]];

/**
 * Runs `args` through each task with a replay that expects nothing: the task must refuse
 * with exit 2, name `value` on stderr, make no call, print nothing on stdout and create no OUT.
 */
async function refuses(
  args: string[],
  value: string | RegExp,
  env: Record<string, string> = {},
): Promise<void> {
  for (const [name, main] of TASKS) {
    const out = tempOut();
    const w = fakeWorld([], { env });
    const code = await main([...args, "--out", out, "--yes"], w.deps);
    assert.equal(code, 2, `${name}: ${w.stderr()}`);
    assert.deepEqual(w.replay.calls, [], `${name} made calls`);
    w.replay.assertDone();
    if (typeof value === "string") {
      assert.ok(w.stderr().includes(value), `${name}: ${w.stderr()} should name ${value}`);
    } else {
      assert.match(w.stderr(), value, name);
    }
    assert.match(w.stderr(), new RegExp(`^error: .*\\nRun "deno task ${name} --help" for usage`));
    assert.equal(w.stdout(), "", `${name} printed data`);
    assert.equal(existsSync(out), false, `${name} created ${out}`);
  }
}

Deno.test("a malformed IPv4 node (192.168.53.300) is refused, named, and nothing runs", async () => {
  await refuses(
    ["--nodes", "192.168.53.10,192.168.53.300,192.168.53.12"],
    'Invalid node "192.168.53.300" in --nodes',
  );
});

Deno.test("a node with shell syntax (foo;rm) is refused, named, and nothing runs", async () => {
  await refuses(["--nodes", "192.168.53.10,foo;rm,192.168.53.12"], 'Invalid node "foo;rm"');
});

Deno.test("a node with a space (a b) is refused, named, and nothing runs", async () => {
  await refuses(["--nodes", "192.168.53.10,a b,192.168.53.12"], 'Invalid node "a b"');
});

Deno.test("a duplicate node is refused, named, and nothing runs", async () => {
  await refuses(
    ["--nodes", "192.168.53.10,192.168.53.11,192.168.53.10"],
    'Duplicate node "192.168.53.10" in --nodes',
  );
});

Deno.test("an option-looking node (--nodes=-x) is refused as an option, and nothing runs", async () => {
  await refuses(["--nodes=-x"], /Invalid node "-x" in --nodes: it looks like an option/);
});

Deno.test("an option-looking entry inside the list is refused too", async () => {
  await refuses(
    ["--nodes", "192.168.53.10,--force,192.168.53.12"],
    'Invalid node "--force" in --nodes: it looks like an option',
  );
});

Deno.test("an empty entry in --nodes is refused, quoting the list, and nothing runs", async () => {
  await refuses(
    ["--nodes", "192.168.53.10,,192.168.53.12"],
    'Invalid --nodes value "192.168.53.10,,192.168.53.12": empty entry',
  );
  await refuses(["--nodes", "192.168.53.10,"], 'Invalid --nodes value "192.168.53.10,"');
});

Deno.test("a --seed not in --nodes is refused, naming the seed and the list", async () => {
  await refuses(
    [...NODES_FLAG, "--seed", "192.168.53.99"],
    `Seed "192.168.53.99" is not in --nodes (${NODES.join(",")})`,
  );
});

Deno.test("an unknown flag is refused, naming the flag, and nothing runs", async () => {
  await refuses([...NODES_FLAG, "--bogus"], "Unknown option '--bogus'");
});

Deno.test("a bad --timeout is refused, naming the value, and nothing runs", async () => {
  await refuses([...NODES_FLAG, "--timeout", "10x"], 'Invalid --timeout value "10x"');
  await refuses([...NODES_FLAG, "--timeout", "0s"], 'Invalid --timeout value "0s"');
});

Deno.test("a missing --nodes (and no TALOS_NODES) is refused, and nothing runs", async () => {
  await refuses(["--seed", SEED], "Missing --nodes");
});

Deno.test("a VIP that is also a node is refused, naming it", async () => {
  await refuses([...NODES_FLAG, "--vip", SEED], `--vip "${SEED}" is also in --nodes`);
});

Deno.test("TALOS_NODES is validated like --nodes and named as the source", async () => {
  await refuses(
    [],
    'Invalid node "foo;rm" in TALOS_NODES',
    { TALOS_NODES: "192.168.53.10,foo;rm,192.168.53.12" },
  );
});

Deno.test("TALOS_NODES stands in for --nodes: the dry-run plan names its nodes and runs nothing", async () => {
  const out = tempOut();
  const w = fakeWorld([], { env: { TALOS_NODES: NODES.join(",") } });
  const code = await wipe(["--out", out, "--dry-run"], w.deps);
  assert.equal(code, 0, w.stderr());
  assert.deepEqual(w.replay.calls, []);
  w.replay.assertDone();
  for (const n of NODES) {
    assert.ok(
      w.stdout().includes(`talos ${n} reset --system-labels-to-wipe EPHEMERAL`),
      `plan resets ${n}:\n${w.stdout()}`,
    );
  }
  assert.equal(existsSync(out), false, "a dry-run writes nothing");
  assert.doesNotMatch(w.stderr(), /error/);
});

Deno.test("--nodes wins over TALOS_NODES", async () => {
  const out = tempOut();
  const w = fakeWorld([], { env: { TALOS_NODES: "10.0.0.1,10.0.0.2,10.0.0.3" } });
  const code = await wipe([...NODES_FLAG, "--out", out, "--dry-run"], w.deps);
  assert.equal(code, 0, w.stderr());
  assert.deepEqual(w.replay.calls, []);
  assert.ok(w.stdout().includes(`talos ${SEED} reset`));
  assert.ok(!w.stdout().includes("10.0.0.1"), w.stdout());
});

Deno.test("an even node count (4) warns about quorum on stderr, and the task still runs", async () => {
  const out = tempOut();
  const four = [...NODES, "192.168.53.13"];
  const w = fakeWorld(four.map((n) => rec.cp(out, n)), { dbs: { "192.168.53.13": {} } });
  const code = await extract(["--nodes", four.join(","), "--out", out], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.equal(w.replay.callsMatching(/ cp /).length, 4);
  assert.match(
    w.stderr(),
    /warning: 4 control-plane nodes is an even count: quorum is 3, so it tolerates no more failures than 3 nodes would/,
  );
  // the warning comes before the work, not instead of it
  assert.ok(w.stderr().indexOf("warning:") < w.stderr().indexOf("==> Extracting"));
});

Deno.test("an even node count warns in recover too, and the plan covers all 4 nodes", async () => {
  const out = tempOut();
  const four = [...NODES, "192.168.53.13"];
  const w = fakeWorld([]);
  const code = await recover(["--nodes", four.join(","), "--out", out, "--vip", VIP], w.deps);
  assert.equal(code, 0, w.stderr());
  assert.deepEqual(w.replay.calls, [], "no terminal, no --yes: only the plan");
  assert.match(w.stderr(), /warning: 4 control-plane nodes is an even count/);
  assert.ok(w.stdout().includes("talos 192.168.53.13 reset"), w.stdout());
});

Deno.test("--help exits 0 with usage on stdout and runs nothing, even without --nodes", async () => {
  for (const [name, main] of TASKS) {
    const out = tempOut();
    const w = fakeWorld([]);
    const code = await main(["--help", "--out", out], w.deps);
    assert.equal(code, 0, w.stderr());
    assert.deepEqual(w.replay.calls, []);
    w.replay.assertDone();
    assert.match(w.stdout(), new RegExp(`^${name}: `));
    assert.match(w.stdout(), new RegExp(`Usage:\\n  deno task ${name} --nodes A,B,C`));
    assert.match(w.stdout(), /--nodes A,B,C +control-plane nodes/);
    assert.match(w.stdout(), /Exit codes: 0 done/);
    assert.equal(w.stderr(), "", `${name} wrote to stderr`);
    assert.equal(existsSync(out), false);
  }
});

Deno.test("-h is --help", async () => {
  const w = fakeWorld([]);
  const code = await wipe(["-h"], w.deps);
  assert.equal(code, 0);
  assert.deepEqual(w.replay.calls, []);
  assert.match(w.stdout(), /^wipe: .*\n\nUsage:\n/);
});

Deno.test("an --out that is a file, or inside one, is refused with exit 2 naming it, and nothing runs", async () => {
  const dir = tempOut();
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "notes.txt");
  writeFileSync(file, "mine\n");
  for (const out of [file, join(file, "sub")]) {
    const all: [string, Main][] = [...TASKS, ["status", status], ["extract", extract]];
    for (const [name, main] of all) {
      const w = fakeWorld([]);
      const code = await main([...NODES_FLAG, "--out", out, "--yes"], w.deps);
      assert.equal(code, 2, `${name} ${out}: ${w.stderr()}`);
      assert.deepEqual(w.replay.calls, [], `${name} made calls`);
      assert.ok(
        w.stderr().includes(`--out "${out}" cannot be a directory: "${file}" is a file`),
        `${name}: ${w.stderr()}`,
      );
      assert.doesNotMatch(w.stderr(), /Uncaught|ENOTDIR|at .*\.ts:\d+/, "no stack trace");
      assert.equal(readFileSync(file, "utf8"), "mine\n");
    }
  }
});

Deno.test("an --out holding someone else's files is refused with exit 2 naming them; nothing is written or chmodded", async () => {
  const out = tempOut();
  mkdirSync(join(out, "photos"), { recursive: true });
  writeFileSync(join(out, "notes.txt"), "mine\n");
  chmodSync(out, 0o755);
  const all: [string, Main][] = [...TASKS, ["status", status], ["extract", extract]];
  for (const [name, main] of all) {
    const w = fakeWorld([]);
    const code = await main([...NODES_FLAG, "--out", out, "--yes"], w.deps);
    assert.equal(code, 2, `${name}: ${w.stderr()}`);
    assert.deepEqual(w.replay.calls, [], `${name} made calls`);
    assert.ok(
      w.stderr().includes(`--out "${out}" holds files this tool did not write (notes.txt, photos)`),
      `${name}: ${w.stderr()}`,
    );
    assert.deepEqual(readdirSync(out).sort(), ["notes.txt", "photos"], `${name} wrote there`);
    assert.equal(statSync(out).mode & 0o777, 0o755, `${name} changed the folder's mode`);
  }
  // --help still answers there.
  const help = fakeWorld([]);
  assert.equal(await wipe(["--out", out, "--help"], help.deps), 0, help.stderr());
  // An OUT of an earlier run (a journal, a manifest), a bare copy (db.NODE/), or the root of a
  // fresh filesystem (lost+found) is fine.
  const fresh = tempOut();
  mkdirSync(join(fresh, "lost+found"), { recursive: true });
  const onFresh = fakeWorld([]);
  assert.equal(await wipe([...NODES_FLAG, "--out", fresh, "--dry-run"], onFresh.deps), 0);
  const copies = tempOut();
  mkdirSync(join(copies, `db.${SEED}`), { recursive: true });
  const w = fakeWorld([]);
  assert.equal(await wipe([...NODES_FLAG, "--out", copies, "--dry-run"], w.deps), 0, w.stderr());
});

Deno.test("--rehash and --etcd-hash are refused (exit 2, nothing changed) by the tasks that would ignore them", async () => {
  for (
    const [run, flag, pattern] of [
      [wipe, "--rehash", /--rehash is a flag of status and diagnose/],
      [recover, "--rehash", /--rehash is a flag of status and diagnose/],
      [recover, "--etcd-hash", /--etcd-hash is a flag of status/],
      [diagnose, "--etcd-hash", /--etcd-hash is a flag of status/],
    ] as const
  ) {
    const w = fakeWorld([]);
    assert.equal(await run([...NODES_FLAG, flag, "--dry-run"], w.deps), 2, flag);
    assert.match(w.stderr(), pattern);
    assert.deepEqual(w.replay.calls, []);
  }
});
