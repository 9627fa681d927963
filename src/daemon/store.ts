import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { emptyState, type DaemonState } from './state.js';

/**
 * The embedded store: one JSON file under the state directory, replaced atomically (write a
 * temp file, fsync, rename, fsync the directory) before a change is acknowledged, so a crash
 * at any moment leaves either the old state or the new one.
 */
export class FileStore {
  readonly dir: string;
  readonly #file: string;

  constructor(dir: string) {
    this.dir = dir;
    this.#file = join(dir, 'state.json');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  load(): DaemonState {
    let text: string;
    try {
      text = readFileSync(this.#file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
      throw new Error(`store: reading ${this.#file}: ${(err as Error).message}`, { cause: err });
    }
    const state = JSON.parse(text) as DaemonState;
    if (state.version !== 1) throw new Error(`store: ${this.#file}: unknown version ${String(state.version)}`);
    return state;
  }

  save(state: DaemonState): void {
    const tmp = `${this.#file}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(state, null, 1));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.#file);
    const dir = openSync(this.dir, 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }
}
