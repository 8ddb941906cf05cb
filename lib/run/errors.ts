/**
 * Errors and exit codes. One top-level handler (`lib/recovery/main.ts`) maps every error to its code.
 *
 * Exit codes: 0 done, already done, or plan printed · 1 a step failed after the cluster may
 * have changed · 2 refused or bad usage, nothing changed · 3 the operator declined ·
 * 130 interrupted.
 */

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_REFUSED = 2;
export const EXIT_DECLINED = 3;
export const EXIT_INTERRUPTED = 130;

/** Base class: every error this tool raises on purpose. `hint` says what to do next. */
export class RecoveryError extends Error {
  exitCode: number = EXIT_FAILED;
  hint?: string;
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super(message, { cause: options?.cause });
    this.name = new.target.name;
    this.hint = options?.hint;
  }
}

/** Bad flags or values: exit 2, nothing changed. */
export class UsageError extends RecoveryError {
  override exitCode = EXIT_REFUSED;
}

/** A safety rule refused to go on: exit 2, nothing changed. */
export class RefusedError extends RecoveryError {
  override exitCode = EXIT_REFUSED;
}

/** The operator answered no: exit 3. */
export class DeclinedError extends RecoveryError {
  override exitCode = EXIT_DECLINED;
}

/** Ctrl-C or SIGTERM: exit 130. */
export class InterruptedError extends RecoveryError {
  override exitCode = EXIT_INTERRUPTED;
}

/** A step failed; the cluster may have changed: exit 1. */
export class StepError extends RecoveryError {}

/** A command exited non-zero (or could not start, or passed its deadline). */
export class CommandError extends StepError {
  readonly command: string;
  readonly code: number | null;
  readonly stderr: string;
  constructor(
    message: string,
    command: string,
    code: number | null,
    stderr: string,
    options?: { hint?: string },
  ) {
    super(message, options);
    this.command = command;
    this.code = code;
    this.stderr = stderr;
  }
}

/** A wait passed its deadline. */
export class DeadlineError extends StepError {}
