/** Where the simulator's own files are, whatever the caller's working directory. */

/** `file:///a/b` → `/a/b` (keeps a trailing slash). */
export function fromFileUrl(url: URL): string {
  return decodeURIComponent(url.pathname);
}

/** The repository root (two levels above this file). */
export const REPO_ROOT = fromFileUrl(new URL("../../", import.meta.url)).replace(/\/$/, "");

/** The fake talosctl wrapper every lab uses. */
export const TALOSCTL_WRAPPER = `${REPO_ROOT}/lib/sim/talosctl`;

/** The fake etcdutl wrapper (model backend: answers `snapshot status` for fixture files). */
export const ETCDUTL_WRAPPER = `${REPO_ROOT}/lib/sim/etcdutl`;

/** The fake kubectl wrapper (`get nodes`, answers while the VIP is held). */
export const KUBECTL_WRAPPER = `${REPO_ROOT}/lib/sim/kubectl`;
