import { existsSync } from 'node:fs';

const DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'];
const found = new Map<string, string>();

/**
 * The system binary `name` (ip, nft, mount) by absolute path. PATH is not trusted: under
 * `npm run`, node_modules/.bin comes first, and an npm package ships a command named `nft`.
 */
export function systemTool(name: string): string {
  let path = found.get(name);
  if (path === undefined) {
    path = DIRS.map((d) => `${d}/${name}`).find((p) => existsSync(p));
    if (path === undefined) throw new Error(`${name} is not installed (looked in ${DIRS.join(', ')})`);
    found.set(name, path);
  }
  return path;
}
