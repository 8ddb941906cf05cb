/**
 * Control-plane node lists: parsed, validated and quorum figures.
 *
 * A node value is an IPv4 or IPv6 address or a DNS name. Anything else (an option-looking
 * value, shell syntax, an empty entry, a duplicate) is refused, naming the value.
 *
 * @example
 * ```ts
 * import { parseNodeList } from "./nodes.ts";
 * parseNodeList("192.168.53.10,192.168.53.11,192.168.53.12"); // 3 nodes
 * ```
 */

import { isIP } from "node:net";
import { UsageError } from "./errors.ts";

const DNS_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;

/** True when `value` is an IPv4/IPv6 address or a valid DNS name. */
export function isValidNode(value: string): boolean {
  if (isIP(value) !== 0) return true;
  if (value.length === 0 || value.length > 253) return false;
  if (/^[0-9.]+$/.test(value)) return false; // looks like a broken IPv4 address
  return value.split(".").every((label) => DNS_LABEL.test(label));
}

/** Splits a comma-separated list and validates every entry. */
export function parseNodeList(raw: string, flag = "--nodes"): string[] {
  const nodes = raw.split(",").map((n) => n.trim());
  const seen = new Set<string>();
  for (const node of nodes) {
    if (node === "") throw new UsageError(`Invalid ${flag} value "${raw}": empty entry`);
    if (node.startsWith("-")) {
      throw new UsageError(`Invalid node "${node}" in ${flag}: it looks like an option`);
    }
    if (!isValidNode(node)) {
      throw new UsageError(
        `Invalid node "${node}" in ${flag}: not an IPv4/IPv6 address or DNS name`,
      );
    }
    if (seen.has(node)) throw new UsageError(`Duplicate node "${node}" in ${flag}`);
    seen.add(node);
  }
  return nodes;
}

/** Votes needed for a majority of `n` members. */
export function quorum(n: number): number {
  return Math.floor(n / 2) + 1;
}

/** A warning for an even member count, or undefined. */
export function evenCountWarning(nodes: string[]): string | undefined {
  if (nodes.length === 0 || nodes.length % 2 !== 0) return undefined;
  return `${nodes.length} control-plane nodes is an even count: quorum is ${
    quorum(nodes.length)
  }, so it tolerates no more failures than ${nodes.length - 1} nodes would`;
}
