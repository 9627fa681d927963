import { closeSync, openSync } from 'node:fs';
import { check, CLONE_NEWNET, setns } from './libc.js';

/**
 * Runs `fn` with the calling thread inside the network namespace at `path` (a bind mount such
 * as /run/netns/NAME, or /proc/PID/ns/net) and always returns to the original one. `fn` must
 * be synchronous: anything it leaves for later would run back in the host namespace.
 */
export function inNetns<T>(path: string, fn: () => T): T {
  const home = openSync('/proc/thread-self/ns/net', 'r');
  let target: number | undefined;
  try {
    target = openSync(path, 'r');
    check(setns(target, CLONE_NEWNET), `setns ${path}`);
    try {
      return fn();
    } finally {
      check(setns(home, CLONE_NEWNET), 'setns back to the host namespace');
    }
  } finally {
    if (target !== undefined) closeSync(target);
    closeSync(home);
  }
}

/** The path of a namespace made with `ip netns add NAME`. */
export const namedNetns = (name: string): string => `/run/netns/${name}`;
