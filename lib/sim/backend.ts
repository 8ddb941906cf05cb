/**
 * What the simulator needs from etcd, answered either by real etcd members on 127.0.0.1
 * (`backend_etcd.ts`) or by a model kept in the state file (`backend_model.ts`). Queries are
 * asked of the node's own member, like Talos does (local client); the caller has already
 * checked that the node's etcd is running.
 */

import type { LabState, NodeState } from "./state.ts";
import type { StatusRow } from "./format.ts";

export interface AlarmInfo {
  /** Decimal member ID. */
  memberID: string;
  alarm: string;
}

export interface MemberInfo {
  id: string;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  learner: boolean;
}

/** One member's `etcd status` figures (the row of `renderStatus` without its node). */
export type EtcdStatusInfo = Omit<StatusRow, "node">;

export interface SnapshotInfo {
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
}

/** A query answer, or the error text etcd gave (`transient` when etcd did not answer). */
export type Answer<T> = { ok: true; value: T } | { ok: false; error: string; transient: boolean };

export type HealthAnswer = { ok: true } | { ok: false; message: string; transient: boolean };

export interface EtcdBackend {
  /** Starts every node as one new cluster (lab up) and waits until it has a leader. */
  startCluster(s: LabState, token: string): Promise<void>;
  /** Starts the node's member again on its existing data dir; returns the PID shown. */
  restart(s: LabState, n: NodeState): Promise<number>;
  /**
   * Restores the node's data dir from `snapshot` as a one-member cluster and starts it.
   * Returns the PID, or the restore's error text (the data dir may be left half made).
   */
  restore(
    s: LabState,
    n: NodeState,
    snapshot: string,
    skipHashCheck: boolean,
    token: string,
  ): Promise<{ pid: number } | { error: string }>;
  /** `member add --learner` through `via`, then starts the node's member; PID or error. */
  join(s: LabState, n: NodeState, via: NodeState): Promise<{ pid: number } | { error: string }>;
  /** `member promote` through `via`; error text or undefined. */
  promote(s: LabState, n: NodeState, via: NodeState): Promise<string | undefined>;
  /** Stops the node's member: SIGKILL and wait (`hard`), or SIGTERM without waiting. */
  stop(s: LabState, n: NodeState, hard: boolean): Promise<void>;
  /** Whether the node's member process still runs. */
  running(s: LabState, n: NodeState): boolean;
  health(s: LabState, n: NodeState): Promise<HealthAnswer>;
  alarms(s: LabState, n: NodeState): Promise<Answer<AlarmInfo[]>>;
  disarm(s: LabState, n: NodeState): Promise<Answer<AlarmInfo[]>>;
  status(s: LabState, n: NodeState): Promise<Answer<EtcdStatusInfo>>;
  members(s: LabState, n: NodeState): Promise<Answer<MemberInfo[]>>;
  /** `MemberRemove` of member `id` (decimal) through the node's member; error text or undefined. */
  removeMember(s: LabState, n: NodeState, id: string): Promise<string | undefined>;
  /** Defragments the node's member; error text or undefined. */
  defrag(s: LabState, n: NodeState): Promise<string | undefined>;
  /** etcdutl-style status of a db file, or the tool's error text and exit code. */
  snapshotStatus(path: string): Promise<SnapshotInfo | { error: string; code: number }>;
}

/** Talos-style URLs of a node (what `etcd members` shows), whatever etcd really listens on. */
export function talosUrls(n: NodeState): { peer: string; client: string } {
  const host = n.label.includes(":") ? `[${n.label}]` : n.label;
  return { peer: `https://${host}:2380`, client: `https://${host}:2379` };
}
