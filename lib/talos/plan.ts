/**
 * The printed plan: the runbook as a bash script, for `--dry-run` and for a destructive step
 * run without a terminal and without `--yes`. It is pasted into an incident channel and read
 * by a second pair of eyes, so it reads like a runbook: a few small named helpers at the top
 * (as Kubernetes' `hack/lib/util.sh` does), then one short line per action. It stops at the
 * first failure (`set -euo pipefail`), every wait has the tool's own deadline, and only the
 * answers that mean "not yet" are retried.
 *
 * @example
 * ```ts
 * import { etcdIsPlan, planScript, talosPlan, waitForPlan } from "./plan.ts";
 * const lines = [
 *   talosPlan("10.0.0.2", ["reboot", "--wait=false"]),
 *   waitForPlan("etcd on 10.0.0.2 to be healthy", 600, etcdIsPlan("10.0.0.2", "HEALTH", "OK")),
 * ];
 * console.log(planScript(["talosctl"], lines));
 * // #!/usr/bin/env bash … talos() { … } wait_for() { … } etcd_is() { … } … talos 10.0.0.2 reboot …
 * ```
 */

import { BOOTSTRAP_NOT_READY } from "./parse.ts";
import { ETCD_DB_PATH } from "./talosctl.ts";
import { shellLine, shellWord } from "../run/command.ts";

/** Answers of `talosctl bootstrap` that mean "not yet" (or no answer): retried until the deadline. */
const BOOTSTRAP_NOT_YET = `${BOOTSTRAP_NOT_READY}|code = Unavailable`;

/** The plan's waits look again after 1 s, then 2, 3, 4, and every 5 s from then on. */
export const PLAN_PAUSE_MAX_S = 5;

interface Helper {
  /** What it does, as its comment line. */
  doc: string;
  body: string[];
  /** Helpers it calls. */
  uses: string[];
}

/** The helpers, in the order they are printed; `talosctl` is the command (and its flags). */
function helpers(talosctl: string): Record<string, Helper> {
  // the pattern in pieces of a few alternatives, so that no line of the plan gets long
  const alts = BOOTSTRAP_NOT_YET.split("|");
  const notYet = [alts.slice(0, 2), alts.slice(2)].map((a) => a.join("|"));
  return {
    talos: {
      doc: "talos NODE ARGS…: talosctl with NODE as both endpoint and node (never the VIP)",
      body: [`talos() { local node=$1; shift; ${talosctl} -e "$node" -n "$node" "$@"; }`],
      uses: [],
    },
    copy_db: {
      doc:
        "copy_db NODE DIR: copy NODE's etcd db into DIR (cp writes DIR/db) by way of DIR.partial",
      body: [
        `copy_db() { talos "$1" cp ${ETCD_DB_PATH} "$2.partial" && mv "$2.partial" "$2"; }`,
      ],
      uses: ["talos"],
    },
    wait_for: {
      doc: `wait_for WHAT SECONDS CMD…: run CMD until it succeeds (again after 1, 2, 3… s, at ` +
        `most ${PLAN_PAUSE_MAX_S}); fail after SECONDS`,
      body: [
        "wait_for() {",
        "  local what=$1 seconds=$2 deadline=$((SECONDS + $2)) pause=1; shift 2",
        '  until "$@"; do',
        '    if [ "$SECONDS" -ge "$deadline" ]; then',
        '      echo "timed out after ${seconds}s waiting for ${what}" >&2; exit 1',
        "    fi",
        `    sleep "$pause"; pause=$((pause < ${PLAN_PAUSE_MAX_S} ? pause + 1 : ${PLAN_PAUSE_MAX_S}))`,
        "  done",
        "}",
      ],
      uses: [],
    },
    etcd_is: {
      doc: "etcd_is NODE FIELD VALUE: `service etcd` on NODE shows FIELD VALUE " +
        "(no answer while it reboots: not yet)",
      body: [`etcd_is() { talos "$1" service etcd 2>/dev/null | grep -Eq "^$2 +$3"; }`],
      uses: ["talos"],
    },
    etcd_restored: {
      doc: "etcd_restored NODE: etcd Running with HEALTH OK; Failed stops the plan, showing why",
      body: [
        "etcd_restored() {",
        '  local s; s=$(talos "$1" service etcd 2>/dev/null) || return 1',
        `  if grep -Eq '^STATE +Failed' <<<"$s"; then echo "$s" >&2; exit 1; fi`,
        `  grep -Eq '^STATE +Running' <<<"$s" && grep -Eq '^HEALTH +OK' <<<"$s"`,
        "}",
      ],
      uses: ["talos"],
    },
    bootstrap_from: {
      doc: "bootstrap_from NODE FILE: restore NODE's etcd from FILE; " +
        "only the answers that mean “not yet” are retried",
      body: [
        "bootstrap_from() {",
        "  local out not_yet",
        '  out=$(talos "$1" bootstrap --recover-from="$2" --recover-skip-hash-check 2>&1) && return 0',
        ...notYet.map((alts, i) => `  not_yet${i ? "+" : ""}='${i ? "|" : ""}${alts}'`),
        `  grep -Eq "$not_yet" <<<"$out" && return 1`,
        '  echo "$out" >&2; exit 1',
        "}",
      ],
      uses: ["talos"],
    },
    kubelet_ok: {
      doc: "kubelet_ok NODE: `service kubelet` on NODE shows STATE Running and HEALTH OK",
      body: [
        "kubelet_ok() {",
        '  local s; s=$(talos "$1" service kubelet 2>/dev/null) || return 1',
        `  grep -Eq '^STATE +Running' <<<"$s" && grep -Eq '^HEALTH +OK' <<<"$s"`,
        "}",
      ],
      uses: ["talos"],
    },
    no_learner: {
      doc: "no_learner NODE: `etcd members` on NODE lists no learner (every member votes)",
      body: [
        `no_learner() { local m; m=$(talos "$1" etcd members) && ! grep -q ' true$' <<<"$m"; }`,
      ],
      uses: ["talos"],
    },
    joining: {
      doc: "joining NODE SEED: NODE's etcd runs (joined or joining), or SEED lists a learner " +
        "(NODE waits its turn)",
      body: [
        "joining() {",
        '  etcd_is "$1" STATE Running && return 0',
        `  local m; m=$(talos "$2" etcd members) && grep -q ' true$' <<<"$m"`,
        "}",
      ],
      uses: ["talos", "etcd_is"],
    },
    voter: {
      doc:
        "voter VIA NODE: `etcd members` on VIA lists NODE as a voter, and NODE's etcd is healthy",
      body: [
        "voter() {",
        '  local m; m=$(talos "$1" etcd members) || return 1',
        `  grep -F "https://$2:2380" <<<"$m" | grep -q ' false$' && etcd_is "$2" HEALTH OK`,
        "}",
      ],
      uses: ["talos", "etcd_is"],
    },
  };
}

/** `talos NODE ARGS…`: one talosctl call of the plan. */
export function talosPlan(node: string, args: string[]): string {
  return `talos ${shellLine([node, ...args])}`;
}

/** `copy_db NODE DIR`: the raw db of NODE into DIR/db, never a half copy at DIR. */
export function copyDbPlan(node: string, dir: string): string {
  return `copy_db ${shellLine([node, dir])}`;
}

/** `wait_for WHAT SECONDS CMD…`: `command` (a helper call) until it holds, within `seconds`. */
export function waitForPlan(what: string, seconds: number, command: string): string {
  return `wait_for ${shellWord(what)} ${Math.round(seconds)} ${command}`;
}

/** `etcd_is NODE FIELD VALUE`: `service etcd` shows `STATE Preparing`, `HEALTH OK`, … */
export function etcdIsPlan(node: string, field: string, value: string): string {
  return `etcd_is ${shellLine([node, field, value])}`;
}

/** `etcd_restored NODE`: Running and healthy; Failed stops the plan. */
export function etcdRestoredPlan(node: string): string {
  return `etcd_restored ${shellWord(node)}`;
}

/** `bootstrap_from NODE FILE`: the restore, false while its answer means "not yet". */
export function bootstrapFromPlan(node: string, file: string): string {
  return `bootstrap_from ${shellLine([node, file])}`;
}

/** `joining NODE SEED`: NODE has begun to join, or waits for the learner slot. */
export function joiningPlan(node: string, seed: string): string {
  return `joining ${shellLine([node, seed])}`;
}

/** `kubelet_ok NODE`: the kubelet on NODE runs and is healthy. */
export function kubeletOkPlan(node: string): string {
  return `kubelet_ok ${shellWord(node)}`;
}

/** `no_learner NODE`: every member listed by NODE votes. */
export function noLearnerPlan(node: string): string {
  return `no_learner ${shellWord(node)}`;
}

/** Bash that runs `lines` at once and fails if any of them failed. */
export function parallelPlan(lines: string[]): string[] {
  return [
    "pids=()",
    ...lines.map((l) => `${l} & pids+=($!)`),
    'for pid in "${pids[@]}"; do wait "$pid"; done',
  ];
}

/**
 * The whole script: the shebang, `set -euo pipefail`, the helpers `lines` call (and only
 * those), then `lines`. `talosctl` is the argv that starts talosctl (path and --talosconfig).
 */
export function planScript(talosctl: string[], lines: string[]): string {
  const all = helpers(shellLine(talosctl));
  const wanted = new Set<string>();
  const want = (name: string) => {
    if (wanted.has(name)) return;
    wanted.add(name);
    all[name].uses.forEach(want);
  };
  // words of the commands only: a helper's name in a comment ("every node a voter") is no use
  const code = lines.filter((l) => !l.trimStart().startsWith("#")).map((l) => l.split("  # ")[0]);
  const words = new Set(code.flatMap((l) => l.split(/[\s;(){}|&$"]+/)));
  for (const name of Object.keys(all)) if (words.has(name)) want(name);
  const defs = Object.entries(all).filter(([name]) => wanted.has(name))
    .flatMap(([, h]) => [`# ${h.doc}`, ...h.body]);
  return [
    "#!/usr/bin/env bash",
    "set -euo pipefail",
    ...(defs.length > 0 ? ["# Helpers (the plan itself starts below them)", ...defs, ""] : []),
    ...lines,
  ].join("\n") + "\n";
}
