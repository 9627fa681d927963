import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import koffi from 'koffi';
import { EWOULDBLOCK, flock, LOCK_EX, LOCK_NB } from '../netns/libc.js';

/**
 * Takes an exclusive flock(2) on `path` (created if missing) for the rest of the process's
 * life, or throws naming the pid that holds it. A kernel lock, not a pid file: it goes with the
 * process however the process dies, so a kill -9 never leaves a daemon that cannot start. The
 * descriptor is close-on-exec (Node opens every file so), so replicas and tools the daemon
 * starts never inherit the lock.
 */
export function holdLock(path: string, what: string): void {
  const fd = openSync(path, 'a+', 0o600);
  if (flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    const errno = koffi.errno();
    closeSync(fd);
    const holder = readFileSync(path, 'utf8').trim();
    if (errno === EWOULDBLOCK) throw new Error(`another tsnet daemon (pid ${holder || 'unknown'}) is using ${what}; stop it first`);
    throw new Error(`locking ${path} for ${what}: errno ${errno}`);
  }
  ftruncateSync(fd, 0);
  writeSync(fd, `${process.pid}\n`);
}
