/**
 * stderr tells the story, stdout carries data. Colour only on a terminal, and never when
 * `NO_COLOR` is set.
 *
 * @example
 * ```ts
 * import { Logger } from "./log.ts";
 * const log = new Logger({ write: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)) });
 * log.step("Extracting etcd db from 3 nodes");
 * ```
 */

export interface LoggerOptions {
  /** Receives every line written to stderr, newline included. */
  write: (text: string) => void;
  /** Colour the markers. @default false */
  color?: boolean;
}

const COLORS = {
  step: "\x1b[1;34m",
  cmd: "\x1b[2m",
  warn: "\x1b[33m",
  error: "\x1b[31m",
  ok: "\x1b[32m",
};
const RESET = "\x1b[0m";

export class Logger {
  #write: (text: string) => void;
  #color: boolean;
  constructor(options: LoggerOptions) {
    this.#write = options.write;
    this.#color = options.color ?? false;
  }

  #paint(kind: keyof typeof COLORS, text: string): string {
    return this.#color ? `${COLORS[kind]}${text}${RESET}` : text;
  }

  /** A runbook step: `==> Wiping 3 nodes`. */
  step(message: string): void {
    this.#write(`${this.#paint("step", "==>")} ${message}\n`);
  }
  info(message: string): void {
    this.#write(`    ${message}\n`);
  }
  ok(message: string): void {
    this.#write(`    ${this.#paint("ok", "ok:")} ${message}\n`);
  }
  warn(message: string): void {
    this.#write(`${this.#paint("warn", "warning:")} ${message}\n`);
  }
  error(message: string): void {
    this.#write(`${this.#paint("error", "error:")} ${message}\n`);
  }
  /** A mutating command, pasteable: `+ talosctl -e … reset …`. */
  command(line: string): void {
    this.#write(`${this.#paint("cmd", "+")} ${line}\n`);
  }
  /** Raw text (tables, command output) to stderr. */
  raw(text: string): void {
    this.#write(text.endsWith("\n") ? text : `${text}\n`);
  }
}
