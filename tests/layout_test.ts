/**
 * The layout holds (README "How the code is laid out"): no import cycle among the project's
 * modules, and arrows one way between the folders of lib/ — tasks → recovery → talos, db →
 * run (sim, the lab, may use anything but the tasks). The graph is Deno's own
 * (`deno info --json`), type-only imports included.
 */

import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { tmpdir } from "node:os";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Every module under `dir` (relative to the root). */
function modules(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

/**
 * module → the project's modules it imports, from one `deno info --json` of every module;
 * `types: false` leaves out type-only imports (no arrow at run time: `run/deps.ts` names the
 * reader's type, not its implementation).
 */
async function importGraph(options: { types?: boolean } = {}): Promise<Map<string, Set<string>>> {
  const all = [...modules("tasks"), ...modules("lib")];
  const dir = mkdtempSync(join(tmpdir(), "layout-"));
  const root = join(dir, "all.ts");
  writeFileSync(root, all.map((m) => `import "${pathToFileURL(join(ROOT, m))}";\n`).join(""));
  const out = await new Deno.Command(Deno.execPath(), { args: ["info", "--json", root] }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: {
      specifier: string;
      dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
    }[];
  };
  const local = (url: string) =>
    url.startsWith("file://") && !relative(ROOT, fileURLToPath(url)).startsWith("..")
      ? relative(ROOT, fileURLToPath(url))
      : undefined;
  const graph = new Map<string, Set<string>>();
  for (const m of info.modules) {
    const from = local(m.specifier);
    if (!from) continue;
    const to = new Set<string>();
    for (const d of m.dependencies ?? []) {
      for (
        const s of [d.code?.specifier, options.types === false ? undefined : d.type?.specifier]
      ) {
        const target = s && local(s);
        if (target) to.add(target);
      }
    }
    graph.set(from, to);
  }
  return graph;
}

/** The import cycles of `graph`, each as the path that closes it. */
export function cycles(graph: Map<string, Set<string>>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (m: string) => {
    state.set(m, "open");
    path.push(m);
    for (const next of graph.get(m) ?? []) {
      if (state.get(next) === "open") found.push([...path.slice(path.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    path.pop();
    state.set(m, "done");
  };
  for (const m of [...graph.keys()].sort()) if (!state.has(m)) visit(m);
  return found;
}

/** The folder a module belongs to: `tasks`, or lib's `run`, `db`, `talos`, `recovery`, `sim`. */
function layer(module: string): string {
  if (module.startsWith("tasks/")) return "tasks";
  const parts = module.split("/");
  return parts.length > 2 ? parts[1] : "lib";
}

/** Who may import whom: a layer imports only the layers listed for it (and itself). */
const MAY_IMPORT: Record<string, string[]> = {
  tasks: ["recovery", "talos", "db", "run", "sim"],
  sim: ["recovery", "talos", "db", "run"],
  recovery: ["talos", "db", "run"],
  talos: ["run"],
  db: ["run"],
  run: [],
};

Deno.test("cycles() finds an import cycle and the path that closes it", () => {
  const graph = new Map([
    ["a.ts", new Set(["b.ts"])],
    ["b.ts", new Set(["c.ts"])],
    ["c.ts", new Set(["a.ts"])],
    ["d.ts", new Set(["a.ts"])],
  ]);
  assert.deepEqual(cycles(graph), [["a.ts", "b.ts", "c.ts", "a.ts"]]);
  assert.deepEqual(cycles(new Map([["a.ts", new Set(["b.ts"])], ["b.ts", new Set()]])), []);
});

Deno.test("no import cycle among the project's modules, and lib's arrows go one way", async () => {
  const graph = await importGraph();
  assert.ok(graph.size > 30, `the graph holds the project (${graph.size} modules)`);
  assert.deepEqual(cycles(graph).map((c) => c.join(" → ")), [], "import cycles");
  const wrong: string[] = [];
  for (const [from, targets] of await importGraph({ types: false })) {
    for (const to of targets) {
      const [a, b] = [layer(from), layer(to)];
      // recover (and the demo) run the steps; a step borrows nothing from another step
      const composes = from === "tasks/recover.ts" || from === "tasks/demo.ts";
      if (a === "tasks" && b === "tasks" && !composes) wrong.push(`${from} → ${to} (step → step)`);
      else if (a !== b && !MAY_IMPORT[a]?.includes(b)) wrong.push(`${from} → ${to}`);
    }
  }
  assert.deepEqual(wrong.sort(), [], "imports against the direction of the layers");
});

Deno.test("lib/ keeps no module at its top level: each lives in the folder of its concern", () => {
  const top = readdirSync(join(ROOT, "lib"), { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts")).map((e) => e.name);
  assert.deepEqual(top, []);
});
