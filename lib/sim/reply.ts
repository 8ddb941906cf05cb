/** What a fake talosctl call was given (parsed) and what it answers: shared by its commands. */

/** What one call prints and returns. */
export interface Reply {
  stdout: string;
  stderr: string;
  code: number;
  /** Printed only after this long (ms), outside the lab's lock: a call that hangs. */
  delayMs?: number;
}

export interface Parsed {
  words: string[];
  flags: Map<string, string[]>;
}
