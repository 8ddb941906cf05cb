/**
 * A fake `talosctl` (v1.13) for the lab: same command lines, same stdout/stderr bytes, same
 * exit codes as the real one for the calls the recovery tasks make, answered from the lab's
 * state (`TALOS_SIM_LAB`, default `<repo>/.lab`) and its etcd members.
 *
 *   talosctl [--talosconfig PATH] -e NODE -n NODE <subcommand>
 *
 * Subcommands: `cp /var/lib/etcd/member/snap/db DIR`, `service etcd`, `reset
 * --system-labels-to-wipe EPHEMERAL [--system-labels-to-wipe ETCD] --graceful=false --reboot
 * --wait=false`, `bootstrap [--recover-from=PATH [--recover-skip-hash-check]]`, `etcd alarm
 * list|disarm`, `etcd members`, `etcd status`, `reboot --wait=false`, `get addresses`,
 * `version`; for `deno task after` (`lib/sim/after.ts`): `etcd snapshot PATH`, `service kubelet
 * [restart]` (workers too), `get members`. Anything else is an error (exit 1): a fake that answers everything would hide
 * a wrong call. Calls are appended to `LAB/calls.log`.
 *
 * Run through the wrapper `lib/sim/talosctl` (or the lab's own `LAB/bin/talosctl`).
 */

import { appendFileSync, chmodSync, existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Answer, EtcdBackend } from "./backend.ts";
import { backendOf } from "./backend_model.ts";
import {
  byMemberId,
  dialError,
  goClean,
  goQuote,
  memberHex,
  multierror,
  nodeRpcError,
  renderAddresses,
  renderAlarms,
  renderMembers,
  renderServices,
  renderStatus,
  renderVersionClient,
  renderVersionServer,
  rpcError,
  type ServiceView,
  tabwrite,
} from "./format.ts";
import { REPO_ROOT } from "./paths.ts";
import { answerAfter } from "./after.ts";
import {
  dbPath,
  findNode,
  hasData,
  labExists,
  type LabState,
  nodeDir,
  type NodeState,
  note,
  reachable,
  scaled,
  update,
} from "./state.ts";
import { markCrashed, rebootNode, resetNode, startBootstrap, tick } from "./tick.ts";
import type { Parsed, Reply } from "./reply.ts";

export const ETCD_DB = "/var/lib/etcd/member/snap/db";

const ok = (stdout = ""): Reply => ({ stdout, stderr: "", code: 0 });

const fail = (stderr: string, stdout = "", code = 1): Reply => ({
  stdout,
  stderr: stderr + "\n",
  code,
});

// ---- command line ---------------------------------------------------------------------

type FlagKind = "string" | "bool" | "slice";

const FLAGS: Record<string, { kind: FlagKind; short?: string }> = {
  talosconfig: { kind: "string" },
  endpoints: { kind: "slice", short: "e" },
  nodes: { kind: "slice", short: "n" },
  context: { kind: "string" },
  cluster: { kind: "string", short: "c" },
  "recover-from": { kind: "string" },
  "recover-skip-hash-check": { kind: "bool" },
  "system-labels-to-wipe": { kind: "slice" },
  "user-disks-to-wipe": { kind: "slice" },
  "wipe-mode": { kind: "string" },
  graceful: { kind: "bool" },
  reboot: { kind: "bool" },
  wait: { kind: "bool" },
  debug: { kind: "bool" },
  timeout: { kind: "string" },
  insecure: { kind: "bool" },
  mode: { kind: "string" },
};

const GLOBAL = new Set(["talosconfig", "endpoints", "nodes", "context", "cluster"]);

const COMMAND_FLAGS: Record<string, string[]> = {
  bootstrap: ["recover-from", "recover-skip-hash-check"],
  reset: [
    "system-labels-to-wipe",
    "user-disks-to-wipe",
    "wipe-mode",
    "graceful",
    "reboot",
    "wait",
    "debug",
    "timeout",
    "insecure",
  ],
  reboot: ["wait", "debug", "timeout", "mode"],
};

export class CliError extends Error {}

/** pflag-style parsing: `--f v`, `--f=v`, `-e v`, bools as `--b` or `--b=false`. */
export function parseCommandLine(argv: string[]): Parsed {
  const words: string[] = [];
  const flags = new Map<string, string[]>();
  const put = (name: string, value: string) => {
    const kind = FLAGS[name].kind;
    const values = kind === "slice" ? value.split(",").filter(Boolean) : [value];
    flags.set(name, kind === "slice" ? [...(flags.get(name) ?? []), ...values] : values);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      words.push(...argv.slice(i + 1));
      break;
    }
    let name: string;
    let value: string | undefined;
    if (a.startsWith("--") && a.length > 2) {
      const eq = a.indexOf("=");
      name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      value = eq < 0 ? undefined : a.slice(eq + 1);
      if (!FLAGS[name]) throw new CliError(`unknown flag: --${name}`);
    } else if (a.startsWith("-") && a.length > 1) {
      const short = a[1];
      const found = Object.entries(FLAGS).find(([, f]) => f.short === short);
      if (!found) throw new CliError(`unknown shorthand flag: '${short}' in ${a}`);
      name = found[0];
      const rest = a.slice(2);
      value = rest === "" ? undefined : rest.startsWith("=") ? rest.slice(1) : rest;
    } else {
      words.push(a);
      continue;
    }
    if (FLAGS[name].kind === "bool") {
      if (value !== undefined && !/^(true|false|1|0|t|f)$/i.test(value)) {
        throw new CliError(
          `invalid argument "${value}" for "--${name}" flag: strconv.ParseBool: parsing ` +
            `"${value}": invalid syntax`,
        );
      }
      put(name, value ?? "true");
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new CliError(`flag needs an argument: --${name}`);
      value = argv[++i];
    }
    put(name, value);
  }
  return { words, flags };
}

function boolFlag(p: Parsed, name: string, dflt: boolean): boolean {
  const v = p.flags.get(name)?.[0];
  return v === undefined ? dflt : /^(true|1|t)$/i.test(v);
}

// ---- replies -------------------------------------------------------------------------

/** The endpoint: `-e`, which must be a node of the lab that answers. */
function endpointError(s: LabState, p: Parsed, prefix: string): Reply | undefined {
  const endpoints = p.flags.get("endpoints") ?? [];
  if (endpoints.length === 0) return fail("failed to determine endpoints");
  const ep = endpoints[0];
  const n = findNode(s, ep);
  if (!n) return fail(prefix + dialError(ep, "connect: no route to host"));
  if (!reachable(n)) return fail(prefix + dialError(ep));
  return undefined;
}

interface Target {
  label: string;
  node?: NodeState;
  error?: string;
}

/** The `-n` nodes; those that do not answer carry their proxied error. */
function targets(s: LabState, p: Parsed): Target[] {
  return (p.flags.get("nodes") ?? []).map((label) => {
    const node = findNode(s, label);
    if (!node) {
      return { label, error: `${label}: ${dialError(label, "connect: no route to host")}` };
    }
    if (!reachable(node)) return { label, error: `${label}: ${dialError(label)}` };
    return { label, node };
  });
}

function combine(prefix: string, stdout: string, errors: string[]): Reply {
  if (errors.length === 0) return ok(stdout);
  return fail(prefix + multierror(errors), stdout);
}

/** Error text of a Talos etcd API call when the node's etcd is not there to answer. */
const NO_ETCD = "failed to create etcd client: context deadline exceeded";

function etcdRunning(s: LabState, be: EtcdBackend, n: NodeState): boolean {
  return n.phase === "running" && be.running(s, n);
}

async function etcdQuery<T>(
  s: LabState,
  be: EtcdBackend,
  p: Parsed,
  prefix: string,
  query: (n: NodeState) => Promise<
    { ok: true; value: T } | { ok: false; error: string; transient: boolean }
  >,
  render: (rows: { label: string; value: T }[]) => string,
): Promise<Reply> {
  const rows: { label: string; value: T }[] = [];
  const errors: string[] = [];
  for (const t of targets(s, p)) {
    if (t.error) {
      errors.push(t.error);
      continue;
    }
    if (!etcdRunning(s, be, t.node!)) {
      errors.push(nodeRpcError(t.label, "Unknown", NO_ETCD));
      continue;
    }
    const r = await query(t.node!);
    if (r.ok) rows.push({ label: t.label, value: r.value });
    else errors.push(nodeRpcError(t.label, "Unknown", r.transient ? NO_ETCD : r.error));
  }
  return combine(prefix, render(rows), errors);
}

export function serviceView(n: NodeState): ServiceView {
  const state = ({
    running: "Running",
    crashed: "Waiting",
    booting: "Waiting",
    preparing: "Preparing",
    restoring: "Preparing",
    failed: "Failed",
    down: "Unknown",
    off: "Unknown",
  } as const)[n.phase];
  let health = "?";
  let healthMessage = "";
  if (n.healthPending) healthMessage = "Unknown";
  else if (n.health) {
    health = n.health.ok ? "OK" : "Fail";
    healthMessage = n.health.message;
  }
  return { node: n.label, state, health, healthMessage, events: n.events };
}

function serviceEtcd(s: LabState, p: Parsed, now: number): Reply {
  const views: ServiceView[] = [];
  const errors: string[] = [];
  for (const t of targets(s, p)) {
    if (t.error) errors.push(t.error);
    else views.push(serviceView(t.node!));
  }
  return combine("error listing services: ", renderServices(views, now), errors);
}

async function copy(s: LabState, be: EtcdBackend, p: Parsed, now: number): Promise<Reply> {
  const [src, local] = p.words.slice(1);
  if (src === undefined || local === undefined || p.words.length !== 3) {
    return fail(`accepts 2 arg(s), received ${p.words.length - 1}`);
  }
  if (src !== ETCD_DB) return fail(`talosctl-sim: cp only simulates ${ETCD_DB}`);
  if (local === "-") return fail("talosctl-sim: cp to stdout (-) is not simulated");
  const dir = goClean(local);
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    return fail(`local path ${goQuote(local)} should be a directory`);
  }
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o777 });
  const prefix = "error initializing gzip: ";
  const ep = endpointError(s, p, prefix);
  if (ep) return ep;
  const t = targets(s, p)[0];
  if (t.error) return fail(prefix + multierror([t.error]));
  const n = t.node!;
  if (n.faults.crashOnCopy) {
    n.faults.crashOnCopy = false;
    await rebootNode(s, be, n, now);
    return fail(prefix + dialError(n.label));
  }
  const from = dbPath(s.dir, n.label);
  if (!existsSync(from)) {
    return fail(
      prefix + `rpc error: code = Unknown desc = lstat ${ETCD_DB}: no such file or directory`,
    );
  }
  const file = goClean(`${dir}/db`);
  let fd: Deno.FsFile;
  try {
    fd = Deno.openSync(file, { write: true, createNew: true, mode: 0o600 });
  } catch (error) {
    const why = error instanceof Deno.errors.AlreadyExists
      ? "file exists"
      : error instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : String(error);
    return fail(`error creating file ${goQuote(file)} mode -rw-------: open ${file}: ${why}`);
  }
  let data = Deno.readFileSync(from);
  const short = n.faults.shortCopy;
  n.faults.shortCopy = undefined;
  if (short) data = data.subarray(0, Math.floor(data.length / 2));
  try {
    fd.writeSync(data);
  } finally {
    fd.close();
  }
  chmodSync(file, 0o600);
  if (short === "error") return fail(`error copying data to ${goQuote(file)}: unexpected EOF`);
  return ok();
}

async function bootstrap(s: LabState, be: EtcdBackend, p: Parsed, now: number): Promise<Reply> {
  const nodes = p.flags.get("nodes") ?? [];
  if (nodes.length !== 1) return fail(`command "bootstrap" is not supported with multiple nodes`);
  if (p.words.length > 1) return fail(`unknown command "${p.words[1]}" for "talosctl bootstrap"`);
  const from = p.flags.get("recover-from")?.[0] ?? "";
  const skip = boolFlag(p, "recover-skip-hash-check", false);
  let stdout = "";
  if (from !== "") {
    const st = await be.snapshotStatus(from);
    if ("error" in st) return fail(st.error, "", st.code === 2 ? 2 : 1);
    stdout = `recovering from snapshot ${goQuote(from)}: hash ${
      st.hash.toString(16).padStart(8, "0")
    }, revision ${st.revision}, total keys ${st.totalKey}, total size ${st.totalSize}\n`;
  }
  const stage = from !== "" ? "error uploading snapshot: " : "error executing bootstrap: ";
  const ep = endpointError(s, p, stage);
  if (ep) return { ...ep, stdout };
  const t = targets(s, p)[0];
  const n = t.node;
  if (t.error) return fail(stage + multierror([t.error]), stdout);
  const booting = n!.phase === "booting";
  if (from !== "" && booting && now < n!.phaseAt + scaled(s, "volumesMountedS")) {
    return fail(
      stage + multierror([
        nodeRpcError(t.label, "FailedPrecondition", "etcd service is not ready for recovery yet"),
      ]),
      stdout,
    );
  }
  const boot = "error executing bootstrap: ";
  if (booting) {
    return fail(
      boot + multierror([
        nodeRpcError(t.label, "FailedPrecondition", "bootstrap is not available yet"),
      ]),
      stdout,
    );
  }
  if (hasData(s.dir, n!.label)) {
    return fail(
      boot + multierror([
        nodeRpcError(t.label, "AlreadyExists", "etcd data directory is not empty"),
      ]),
      stdout,
    );
  }
  let uploaded = "";
  if (from !== "") {
    uploaded = join(nodeDir(s.dir, n!.label), "etcd.snapshot");
    mkdirSync(nodeDir(s.dir, n!.label), { recursive: true });
    writeFileSync(uploaded, Deno.readFileSync(from));
  }
  startBootstrap(s, n!, uploaded, skip, now);
  return ok(stdout);
}

async function reset(s: LabState, be: EtcdBackend, p: Parsed, now: number): Promise<Reply> {
  if (p.words.length > 1) return fail(`unknown command "${p.words[1]}" for "talosctl reset"`);
  const labels = p.flags.get("system-labels-to-wipe") ?? [];
  const unsupported = [
    boolFlag(p, "wait", true) && "--wait=false is required (the tracker is not simulated)",
    boolFlag(p, "graceful", true) &&
    "--graceful=false is required (a graceful reset needs a working etcd)",
    !boolFlag(p, "reboot", false) && "--reboot is required (without it the node powers off)",
    labels.length === 0 && "--system-labels-to-wipe is required (a full wipe is not simulated)",
  ].filter(Boolean);
  if (unsupported.length > 0) return fail(`talosctl-sim: reset: ${unsupported[0]}`);
  const prefix = "error executing reset: ";
  const ep = endpointError(s, p, prefix);
  if (ep) return ep;
  const errors: string[] = [];
  for (const t of targets(s, p)) {
    if (t.error) {
      errors.push(t.error);
      continue;
    }
    const bad = labels.find((l) => !["EPHEMERAL", "ETCD", "STATE", "META"].includes(l));
    if (bad) {
      errors.push(nodeRpcError(
        t.label,
        "Unknown",
        `failed to get volume status with label ${goQuote(bad)}: resource not found`,
      ));
      continue;
    }
    await resetNode(s, be, t.node!, now);
    if (labels.includes("STATE")) t.node!.phase = "off";
  }
  return combine(prefix, "", errors);
}

async function reboot(s: LabState, be: EtcdBackend, p: Parsed, now: number): Promise<Reply> {
  if (p.words.length > 1) return fail(`unknown command "${p.words[1]}" for "talosctl reboot"`);
  if (boolFlag(p, "wait", true)) {
    return fail("talosctl-sim: reboot: --wait=false is required (the tracker is not simulated)");
  }
  const prefix = "error executing reboot: ";
  const ep = endpointError(s, p, prefix);
  if (ep) return ep;
  const errors: string[] = [];
  for (const t of targets(s, p)) {
    if (t.error) errors.push(t.error);
    else await rebootNode(s, be, t.node!, now);
  }
  return combine(prefix, "", errors);
}

function version(s: LabState, p: Parsed): Reply {
  const client = renderVersionClient();
  const ep = endpointError(s, p, "error getting version: ");
  if (ep) return { ...ep, stdout: client };
  const okNodes: string[] = [];
  const errors: string[] = [];
  for (const t of targets(s, p)) {
    if (t.error) errors.push(t.error);
    else okNodes.push(t.label);
  }
  return combine("error getting version: ", client + renderVersionServer(okNodes), errors);
}

function addresses(s: LabState, p: Parsed): Reply {
  const rows: { node: string; index: number; vip?: string }[] = [];
  const errors: string[] = [];
  for (const t of targets(s, p)) {
    if (t.error) errors.push(t.error);
    else {
      rows.push({
        node: t.label,
        index: t.node!.index,
        vip: s.vipHolder === t.label ? s.vip : undefined,
      });
    }
  }
  return combine("", renderAddresses(rows), errors);
}

/** Answers one talosctl command line against the lab state (already advanced to `now`). */
export async function answer(
  s: LabState,
  be: EtcdBackend,
  p: Parsed,
  now: number,
): Promise<Reply> {
  const cmd = p.words.join(" ");
  const command = p.words[0] ?? "";
  const allowed = new Set([...GLOBAL, ...(COMMAND_FLAGS[command] ?? [])]);
  const stray = [...p.flags.keys()].find((f) => !allowed.has(f));
  if (stray) return fail(`unknown flag: --${stray}`);
  if ((p.flags.get("nodes") ?? []).length === 0) {
    return fail(
      "nodes are not set for the command: please use `--nodes` flag or configuration file to " +
        "set the nodes to run the command against",
    );
  }
  const tc = p.flags.get("talosconfig")?.[0];
  if (tc !== undefined && !existsSync(tc)) {
    return fail(`failed to open config file ${goQuote(tc)}: open ${tc}: no such file or directory`);
  }
  const afterReply = await answerAfter(s, be, p, now); // etcd snapshot, kubelet, get members
  if (afterReply) return afterReply;
  const single = ["cp", "copy", "bootstrap"].includes(command);
  if (single && p.flags.get("nodes")!.length > 1) {
    return fail(
      `command "${command === "cp" ? "copy" : command}" is not supported with multiple nodes`,
    );
  }
  if (p.words[0] === "etcd" && p.words[1] === "remove-member" && p.words.length === 3) {
    // talosctl parses the ID before it dials
    const id = parseMemberId(p.words[2]);
    if ("error" in id) return fail(id.error);
  }
  if (["service", "get", "etcd"].includes(command)) {
    const prefix = {
      service: "error listing services: ",
      get: "",
      etcd: {
        "etcd alarm list": "error getting alarms: ",
        "etcd alarm disarm": "error disarming alarms: ",
        "etcd status": "error getting status: ",
        "etcd members": "error getting members: ",
        "etcd defrag": "",
      }[cmd] ?? "",
    }[command] ?? "";
    const ep = endpointError(s, p, prefix);
    if (ep) return ep;
  }
  switch (cmd) {
    case "service etcd":
      return serviceEtcd(s, p, now);
    case "etcd alarm list":
      return await blockedWithoutLeader(s, be, p, "error getting alarms: ", "list") ??
        await etcdQuery(s, be, p, "error getting alarms: ", (n) => be.alarms(s, n), alarmRows);
    case "etcd alarm disarm":
      return await blockedWithoutLeader(s, be, p, "error disarming alarms: ", "disarm") ??
        await etcdQuery(
          s,
          be,
          p,
          "error disarming alarms: ",
          (n) => be.disarm(s, n),
          alarmRows,
        );
    case "etcd status":
      return await etcdQuery(
        s,
        be,
        p,
        "error getting status: ",
        (n) => be.status(s, n),
        (rows) => renderStatus(rows.map((r) => ({ node: r.label, ...r.value }))),
      );
    case "etcd members":
      return await etcdQuery(
        s,
        be,
        p,
        "error getting members: ",
        (n) => withLeader(s, be, n, () => be.members(s, n)),
        (rows) =>
          renderMembers(rows.flatMap((r) =>
            [...r.value].sort(byMemberId).map((m) => ({
              node: r.label,
              id: m.id,
              hostname: m.name,
              peerUrls: m.peerUrls,
              clientUrls: m.clientUrls,
              learner: m.learner,
            }))
          )),
      );
    case "get addresses":
    case "get address":
    case "get addressstatus":
    case "get addressstatuses":
      return addresses(s, p);
    case "version":
      return version(s, p);
    case "get volumestatus ETCD":
    case "get volumestatuses ETCD":
    case "get vs ETCD":
      return volumeStatus(s, p);
    case "etcd defrag":
      return await defrag(s, be, p);
  }
  if (p.words[0] === "etcd" && p.words[1] === "remove-member") {
    return await removeMember(s, be, p, now);
  }
  switch (command) {
    case "cp":
    case "copy":
      return await copy(s, be, p, now);
    case "bootstrap":
      return await bootstrap(s, be, p, now);
    case "reset":
      return await reset(s, be, p, now);
    case "reboot":
      return await reboot(s, be, p, now);
  }
  if (command === "") return fail("talosctl-sim: no command given");
  return fail(`unknown command ${goQuote(cmd)} for "talosctl" (not simulated by talosctl-sim)`);
}

// ---- triage commands: get volumestatus, etcd remove-member, etcd defrag, no leader ------

/** `get volumestatus ETCD`: a directory under EPHEMERAL, ready (Talos ≥ 1.10, no ETCD partition). */
function volumeStatus(s: LabState, p: Parsed): Reply {
  let text = "NODE\tNAMESPACE\tTYPE\tID\tVERSION\tTYPE\tPHASE\tLOCATION\tSIZE\n";
  const errors: string[] = [];
  let rows = 0;
  for (const t of targets(s, p)) {
    if (t.error) errors.push(t.error);
    else {
      text += `${t.label}\truntime\tVolumeStatus\tETCD\t1\tdirectory\tready\t\t\n`;
      rows++;
    }
  }
  return combine("", rows > 0 ? tabwrite(text) : "", errors);
}

/** Talos' parse of the member ID: `strconv.ParseUint(arg, 16, 64)`. */
export function parseMemberId(arg: string): { id: string } | { error: string } {
  const why = !/^[0-9a-fA-F]+$/.test(arg)
    ? "invalid syntax"
    : BigInt(`0x${arg}`) >= 1n << 64n
    ? "value out of range"
    : undefined;
  if (why) {
    return {
      error: `error parsing member ID: error parsing etcd member id: strconv.ParseUint: parsing ` +
        `${goQuote(arg)}: ${why}`,
    };
  }
  return { id: BigInt(`0x${arg}`).toString() };
}

/** Whether the node's member knows a leader (`etcd status` answers without quorum). */
async function noLeader(s: LabState, be: EtcdBackend, n: NodeState): Promise<boolean> {
  const st = await be.status(s, n);
  return st.ok && !st.value.learner && /^0*$/.test(st.value.leader);
}

/** etcd 3.6 lists members linearizably: without a leader it answers `etcdserver: no leader`. */
async function withLeader<T>(
  s: LabState,
  be: EtcdBackend,
  n: NodeState,
  query: () => Promise<Answer<T>>,
): Promise<Answer<T>> {
  if (await noLeader(s, be, n)) {
    return { ok: false, error: "etcdserver: no leader", transient: false };
  }
  return await query();
}

/**
 * `etcd alarm list|disarm` on a node whose member has no leader: a raft proposal that never
 * commits; clientv3 retries its 7 s timeout ~100 times, so talosctl answers after ~12 min
 * (scaled by the lab's speed) with DeadlineExceeded. Undefined when every node has a leader.
 */
async function blockedWithoutLeader(
  s: LabState,
  be: EtcdBackend,
  p: Parsed,
  prefix: string,
  what: "list" | "disarm",
): Promise<Reply | undefined> {
  const stuck: string[] = [];
  for (const t of targets(s, p)) {
    if (t.node && etcdRunning(s, be, t.node) && await noLeader(s, be, t.node)) stuck.push(t.label);
  }
  if (stuck.length === 0) return undefined;
  const desc = `failed to ${what} etcd alarms: ` +
    rpcError("DeadlineExceeded", "context deadline exceeded");
  const errors = stuck.map((l) => nodeRpcError(l, "DeadlineExceeded", desc));
  return { ...fail(prefix + multierror(errors)), delayMs: scaled(s, "alarmNoLeaderS") };
}

/** `etcd remove-member <hex id>`: asks each `-n` node's member to remove the member. */
async function removeMember(
  s: LabState,
  be: EtcdBackend,
  p: Parsed,
  now: number,
): Promise<Reply> {
  if (p.words.length !== 3) return fail(`accepts 1 arg(s), received ${p.words.length - 2}`);
  const parsed = parseMemberId(p.words[2]);
  if ("error" in parsed) return fail(parsed.error);
  const dec = parsed.id;
  const errors: string[] = [];
  for (const t of targets(s, p)) {
    if (t.error) {
      errors.push(t.error);
      continue;
    }
    const n = t.node!;
    if (!etcdRunning(s, be, n)) {
      errors.push(nodeRpcError(t.label, "Unknown", NO_ETCD));
      continue;
    }
    const err = await noLeader(s, be, n)
      ? "etcdserver: no leader"
      : await be.removeMember(s, n, dec);
    if (err === undefined) {
      await afterRemove(s, be, dec, now);
      continue;
    }
    errors.push(
      /member not found/.test(err)
        ? nodeRpcError(t.label, "NotFound", `failed to remove member ${dec}: ${err}`)
        : nodeRpcError(
          t.label,
          "Unknown",
          `failed to remove member: failed to remove member ${dec}: ${err}`,
        ),
    );
  }
  return combine("", "", errors);
}

/**
 * The lab's bookkeeping after member `id` left the primary cluster. A removed member that
 * runs stops by itself (real etcd: "the member has been permanently removed"); the model's
 * is stopped here.
 */
async function afterRemove(s: LabState, be: EtcdBackend, id: string, now: number) {
  const owner = s.nodes.find((n) => n.member?.id === id && n.member.cluster === s.primary);
  if (!owner) return;
  if (!owner.member!.learner) s.voters[s.primary] = (s.voters[s.primary] ?? 1) - 1;
  owner.member = { ...owner.member!, cluster: `removed-${s.primary}` };
  note(s, `${owner.label}: member ${memberHex(id)} removed from the cluster`);
  if (s.backend === "model" && be.running(s, owner)) {
    await be.stop(s, owner, true);
    if (owner.phase === "running") markCrashed(s, owner, now, "its member was removed");
  }
}

const DEFRAG_USAGE = `
Usage:
  talosctl etcd defrag [flags]

Flags:
  -h, --help   help for defrag

Global Flags:
  -c, --cluster string             Cluster to connect to if a proxy endpoint is used.
      --context string             Context to be used in command
  -e, --endpoints strings          override default endpoints in Talos configuration
  -n, --nodes strings              target the specified nodes
      --siderov1-keys-dir string   The path to the SideroV1 auth PGP keys directory. Defaults to 'SIDEROV1_KEYS_DIR' env variable if set, otherwise '$HOME/.talos/keys'. Only valid for Contexts that use SideroV1 auth.
      --talosconfig string         The path to the Talos configuration file. Defaults to 'TALOSCONFIG' env variable if set, otherwise '$HOME/.talos/config' and '/var/run/secrets/talos.dev/config' in order.
`;

/** `etcd defrag` on one node: etcd's own defragmentation of that member; prints nothing. */
async function defrag(s: LabState, be: EtcdBackend, p: Parsed): Promise<Reply> {
  if ((p.flags.get("nodes") ?? []).length > 1) {
    return fail(`command "etcd defrag" is not supported with multiple nodes\n${DEFRAG_USAGE}`);
  }
  const t = targets(s, p)[0];
  if (t.error) return fail(multierror([t.error]));
  const n = t.node!;
  if (!etcdRunning(s, be, n)) return fail(multierror([nodeRpcError(t.label, "Unknown", NO_ETCD)]));
  const err = n.member?.learner
    ? "etcdserver: rpc not supported for learner"
    : await be.defrag(s, n);
  if (err === undefined) {
    note(s, `${n.label}: defragmented`);
    return ok();
  }
  return fail(
    multierror([nodeRpcError(t.label, "Unknown", `failed to defragment etcd: ${err}`)]),
  );
}

function alarmRows(rows: { label: string; value: { memberID: string; alarm: string }[] }[]) {
  return renderAlarms(
    rows.flatMap((r) =>
      r.value.map((a) => ({ node: r.label, memberId: a.memberID, alarm: a.alarm }))
    ),
  );
}

/** The lab directory the fake answers for. */
export function labDir(): string {
  return Deno.env.get("TALOS_SIM_LAB") || `${REPO_ROOT}/.lab`;
}

/** Runs one command line: lock, advance the clock, answer, save, log the call. */
export async function run(argv: string[], dir = labDir(), at?: number): Promise<Reply> {
  let parsed: Parsed;
  try {
    parsed = parseCommandLine(argv);
  } catch (error) {
    if (error instanceof CliError) return fail(error.message);
    throw error;
  }
  if (!labExists(dir)) {
    return fail(`talosctl-sim: no lab in ${dir} (start one with: deno task lab up)`);
  }
  const reply = await update(dir, async (s) => {
    const be = await backendOf(s);
    const now = at ?? Date.now();
    await tick(s, be, now);
    return await answer(s, be, parsed, now);
  });
  const { delayMs, ...printed } = reply;
  if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
  appendFileSync(
    join(dir, "calls.log"),
    JSON.stringify({ at: new Date().toISOString(), cwd: Deno.cwd(), argv, code: printed.code }) +
      "\n",
  );
  return printed;
}

function writeAll(stream: { writeSync(p: Uint8Array): number }, text: string) {
  let data = new TextEncoder().encode(text);
  while (data.length > 0) data = data.subarray(stream.writeSync(data));
}

if (import.meta.main) {
  const reply = await run(Deno.args);
  writeAll(Deno.stdout, reply.stdout);
  writeAll(Deno.stderr, reply.stderr);
  Deno.exit(reply.code);
}
