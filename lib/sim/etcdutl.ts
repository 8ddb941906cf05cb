/**
 * A fake `etcdutl` for labs without etcd (model backend): `snapshot status FILE [-w
 * json|simple]` answers for byte-exact copies of the db files in `fixtures/sim/`, with the
 * values etcdctl 3.4.23 printed for them (JSON without `version`, like 3.4/3.5). Any other
 * file is `invalid database`, anything else a usage error. Run through `lib/sim/etcdutl`.
 */

import { humanizeBytes } from "../run/humanize.ts";
import { modelBackend } from "./backend_model.ts";

export async function etcdutl(args: string[]): Promise<{ out: string; err: string; code: number }> {
  const [a, b, file, ...rest] = args;
  if (a !== "snapshot" || b !== "status" || file === undefined) {
    return {
      out: "",
      err: "Error: etcdutl-sim only answers: snapshot status FILE [-w json]\n",
      code: 1,
    };
  }
  let format = "simple";
  for (let i = 0; i < rest.length; i++) {
    const f = rest[i];
    if (f === "-w" || f === "--write-out") format = rest[++i] ?? "";
    else if (f.startsWith("--write-out=")) format = f.slice("--write-out=".length);
    else return { out: "", err: `Error: unknown flag: ${f}\n`, code: 1 };
  }
  const st = await modelBackend.snapshotStatus(file);
  if ("error" in st) return { out: "", err: `Error: ${st.error}\n`, code: st.code };
  if (format === "json") return { out: JSON.stringify(st) + "\n", err: "", code: 0 };
  if (format === "simple") {
    const line = [st.hash.toString(16), st.revision, st.totalKey, humanizeBytes(st.totalSize)]
      .join(", ");
    return { out: line + "\n", err: "", code: 0 };
  }
  return { out: "", err: `Error: etcdutl-sim: output format "${format}" not simulated\n`, code: 1 };
}

if (import.meta.main) {
  const r = await etcdutl(Deno.args);
  await Deno.stdout.write(new TextEncoder().encode(r.out));
  await Deno.stderr.write(new TextEncoder().encode(r.err));
  Deno.exit(r.code);
}
