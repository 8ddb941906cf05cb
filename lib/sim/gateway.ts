/**
 * A small client for etcd's JSON gateway (`POST /v3/...`) on 127.0.0.1. etcd writes uint64
 * values as JSON strings there, so member IDs stay exact. Keys and values are base64.
 */

export type GatewayResult =
  | { ok: true; body: Record<string, unknown> }
  | { ok: false; error: string; transport: boolean };

/** POSTs `body` to `http://127.0.0.1:PORT/v3/PATH`. */
export async function gw(
  port: number,
  path: string,
  body: unknown,
  timeoutMs = 1_000,
): Promise<GatewayResult> {
  let res: Response;
  try {
    res = await fetch(`http://127.0.0.1:${port}/v3/${path}`, {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "content-type": "application/json" },
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    const text = error instanceof Error && error.name === "TimeoutError"
      ? "context deadline exceeded"
      : String(error instanceof Error ? error.message : error);
    return { ok: false, error: text, transport: true };
  }
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, error: text.trim() || `HTTP ${res.status}`, transport: true };
  }
  if (!res.ok || typeof json.error === "string") {
    return { ok: false, error: String(json.error ?? json.message ?? res.status), transport: false };
  }
  return { ok: true, body: json };
}

export function b64(s: string): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(s)));
}

export function unb64(s: string): string {
  return new TextDecoder().decode(Uint8Array.from(atob(s), (c) => c.charCodeAt(0)));
}

/** The range end that selects every key starting with `prefix`. */
export function prefixEnd(prefix: string): string {
  const bytes = new TextEncoder().encode(prefix);
  bytes[bytes.length - 1]++;
  return btoa(String.fromCharCode(...bytes));
}

export interface GwMember {
  ID: string;
  name?: string;
  peerURLs?: string[];
  clientURLs?: string[];
  isLearner?: boolean;
}

export interface GwAlarm {
  memberID: string;
  alarm: string;
}
