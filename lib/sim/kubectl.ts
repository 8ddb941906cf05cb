/**
 * A fake `kubectl` for the lab: answers `get nodes [-o wide]` (the workers of `after.ts`
 * too), and `get pods -A -o json`, `get events -A -o json`, `-n NS delete pod NAME`. The Kubernetes API of
 * the lab "answers" while a node holds the VIP (kube-apiserver needs a writable etcd);
 * otherwise the call fails like kubectl does when nothing listens on the endpoint. A node is
 * Ready while it is up and its etcd runs. Run through `lib/sim/kubectl` (reads TALOS_SIM_LAB).
 */

import { answerKubectl, isAfterKubectl, workerNodeRows } from "./after.ts";
import { backendOf } from "./backend_model.ts";
import { tabwrite } from "./format.ts";
import { labExists, update } from "./state.ts";
import { labDir } from "./talosctl.ts";
import { tick } from "./tick.ts";

export async function kubectl(
  args: string[],
  dir = labDir(),
): Promise<{ out: string; err: string; code: number }> {
  const wide = args.join(" ") === "get nodes -o wide";
  const pods = isAfterKubectl(args);
  if (!wide && args.join(" ") !== "get nodes" && !pods) {
    return {
      out: "",
      err: `kubectl-sim only answers "get nodes [-o wide]", "get pods|events -A -o json", ` +
        `"-n NS delete pod NAME"\n`,
      code: 1,
    };
  }
  if (!labExists(dir)) return { out: "", err: `kubectl-sim: no lab in ${dir}\n`, code: 1 };
  return await update(dir, async (s) => {
    await tick(s, await backendOf(s));
    if (!s.vipHolder) {
      return {
        out: "",
        err: `The connection to the server ${s.vip}:6443 was refused - did you specify the ` +
          `right host or port?\n`,
        code: 1,
      };
    }
    if (pods) return answerKubectl(s, args, Date.now());
    const age = `${Math.max(0, Math.floor((Date.now() - s.createdAt) / 60_000))}m`;
    let text = wide
      ? "NAME\tSTATUS\tROLES\tAGE\tVERSION\tINTERNAL-IP\tEXTERNAL-IP\tOS-IMAGE\tKERNEL-VERSION\t" +
        "CONTAINER-RUNTIME\n"
      : "NAME\tSTATUS\tROLES\tAGE\tVERSION\n";
    for (const n of s.nodes) {
      const ready = n.phase === "running" ? "Ready" : "NotReady";
      text += `${n.name}\t${ready}\tcontrol-plane\t${age}\tv1.36.3` +
        (wide
          ? `\t${n.label}\t<none>\tTalos (v1.13.9)\t6.18.44-talos\tcontainerd://2.2.7\n`
          : "\n");
    }
    text += workerNodeRows(s, wide, age, Date.now());
    return { out: tabwrite(text, 3, 6), err: "", code: 0 };
  });
}

if (import.meta.main) {
  const r = await kubectl(Deno.args);
  await Deno.stdout.write(new TextEncoder().encode(r.out));
  await Deno.stderr.write(new TextEncoder().encode(r.err));
  Deno.exit(r.code);
}
