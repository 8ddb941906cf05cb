/**
 * `snapshot status` output, byte for byte: etcdctl 3.4 (and etcdctl/etcdutl 3.5, same text)
 * or etcdutl 3.6+ (adds `version`; `totalKey` there counts distinct live keys).
 * Sources: etcdctl/ctlv3/command/printer{,_json,_table}.go @v3.4.23 and
 * etcdutl/etcdutl/printer*.go @v3.6.5 (olekukonko/tablewriter, right-aligned cells).
 *
 * @example
 * ```ts
 * import { formatStatusJson, formatStatusTable } from "./etcd_db_format.ts";
 * const s = { hash: 3433850351, revision: 4502, totalKey: 4509, totalKeyLive: 2501,
 *   totalSize: 745472, version: "" };
 * formatStatusJson(s, "3.4"); // '{"hash":3433850351,"revision":4502,"totalKey":4509,"totalSize":745472}\n'
 * formatStatusTable(s, "3.4"); // "+----------+----------+…\n|   HASH   | REVISION |…"
 * ```
 */

import { humanizeBytes } from "../run/humanize.ts";

/** Which tool's output: "3.4" = etcdctl 3.4/3.5 (and etcdutl 3.5), "3.6" = etcdutl 3.6+. */
export type StatusFlavour = "3.4" | "3.6";

/** The fields `snapshot status` prints (a `DbStatus` has them all). */
export interface StatusFigures {
  hash: number;
  revision: number;
  /** Every bucket entry (3.4/3.5 meaning). */
  totalKey: number;
  /** Distinct live user keys (3.6+ meaning). */
  totalKeyLive: number;
  totalSize: number;
  /** Storage version, "" before 3.6. */
  version: string;
}

/** `snapshot status -w json`: one line, with its newline. */
export function formatStatusJson(s: StatusFigures, flavour: StatusFlavour): string {
  const totalKey = flavour === "3.6" ? s.totalKeyLive : s.totalKey;
  const base = `{"hash":${s.hash},"revision":${s.revision},"totalKey":${totalKey},` +
    `"totalSize":${s.totalSize}`;
  return flavour === "3.6" ? `${base},"version":${JSON.stringify(s.version)}}\n` : `${base}}\n`;
}

/** `snapshot status -w table`: tablewriter box, centred upper-case headers, right-aligned cells. */
export function formatStatusTable(s: StatusFigures, flavour: StatusFlavour): string {
  const header = ["hash", "revision", "total keys", "total size"];
  const row = [
    s.hash.toString(16),
    String(s.revision),
    String(flavour === "3.6" ? s.totalKeyLive : s.totalKey),
    humanizeBytes(s.totalSize),
  ];
  if (flavour === "3.6") {
    header.push("version");
    row.push(s.version);
  }
  return renderTable(header.map((h) => h.toUpperCase()), row);
}

/** `snapshot status -w simple` (the default): cells joined by ", ". */
export function formatStatusSimple(s: StatusFigures, flavour: StatusFlavour): string {
  const cells = [
    s.hash.toString(16),
    String(s.revision),
    String(flavour === "3.6" ? s.totalKeyLive : s.totalKey),
    humanizeBytes(s.totalSize),
  ];
  if (flavour === "3.6") cells.push(s.version);
  return `${cells.join(", ")}\n`;
}

function renderTable(header: string[], row: string[]): string {
  const widths = header.map((h, i) => Math.max(h.length, row[i].length));
  const line = `+${widths.map((w) => "-".repeat(w + 2)).join("+")}+\n`;
  const centre = (text: string, w: number) => {
    const left = Math.floor((w - text.length) / 2);
    return " ".repeat(left) + text + " ".repeat(w - text.length - left);
  };
  const head = `|${header.map((h, i) => ` ${centre(h, widths[i])} `).join("|")}|\n`;
  const body = `|${row.map((c, i) => ` ${c.padStart(widths[i])} `).join("|")}|\n`;
  return line + head + line + body + line;
}
