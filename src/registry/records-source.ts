import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Registry } from './registry.js';
import type { RecordsState } from './types.js';
import { parseRecords, RecordsError, show } from './validate.js';

const KEYS = ['networks', 'endpoints', 'services'] as const;
type RecordsKey = (typeof KEYS)[number];

/**
 * One file's document: an object holding some of the three arrays and nothing else. Anything
 * else (`null`, `[]`, `42`, a typo'd key) is refused rather than read as "no records", which
 * would take every name away at once.
 */
function recordsDocument(doc: unknown, file: string): Partial<Record<RecordsKey, unknown[]>> {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new Error(`${file}: the document is ${Array.isArray(doc) ? 'an array' : show(doc)}, not an object with ${KEYS.join(', ')}`);
  }
  const entries = Object.entries(doc);
  const unknown = entries.filter(([k]) => !(KEYS as readonly string[]).includes(k)).map(([k]) => k);
  if (unknown.length > 0) throw new Error(`${file}: unknown key ${JSON.stringify(unknown[0])} (expected ${KEYS.join(', ')})`);
  if (entries.length === 0) throw new Error(`${file}: the document has none of ${KEYS.join(', ')}`);
  for (const [key, list] of entries) {
    if (!Array.isArray(list)) throw new Error(`${file}: ${key}: ${show(list)} is not an array`);
  }
  return doc as Partial<Record<RecordsKey, unknown[]>>;
}

/** Reads a records file, or every `*.json` in a directory merged into one document (sorted by name). */
export function readRecords(path: string): RecordsState {
  const files = statSync(path).isDirectory()
    ? readdirSync(path)
        .filter((f) => f.endsWith('.json'))
        .sort()
        .map((f) => join(path, f))
    : [path];
  const merged = { networks: [] as unknown[], endpoints: [] as unknown[], services: [] as unknown[] };
  for (const file of files) {
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new Error(`${file}: ${(err as Error).message}`, { cause: err });
    }
    for (const [key, list] of Object.entries(recordsDocument(doc, file))) merged[key as RecordsKey].push(...list);
  }
  try {
    return parseRecords(merged, { adopt: true });
  } catch (err) {
    const where = files.length === 1 ? files[0] : path;
    if (err instanceof RecordsError) throw new Error(`${where}: ${err.message}`, { cause: err });
    throw err;
  }
}

export interface RecordsSourceOptions {
  path: string;
  registry: Registry;
  onReload(result: { ok: true; generation: number } | { ok: false; error: Error }): void;
  /** Quiet time after the last file event before reading (editors write in several steps). */
  debounceMs?: number;
}

/**
 * Keeps a registry in step with a records file or directory: read at start (a bad file then
 * is an error), re-read on change and on `reload()`. A bad file later leaves the last good
 * state in place; a good one is swapped in whole.
 */
export class RecordsSource {
  readonly #opts: RecordsSourceOptions;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #last = '';

  constructor(opts: RecordsSourceOptions) {
    this.#opts = opts;
    this.#apply(readRecords(opts.path));
  }

  start(): void {
    const { path, debounceMs = 50 } = this.#opts;
    const isDir = statSync(path).isDirectory();
    // Watch the directory: an editor's save often replaces the file, which a file watch misses.
    this.#watcher = watch(isDir ? path : dirname(path), (_event, file) => {
      if (!isDir && file !== null && file !== basename(path)) return;
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => this.reload(), debounceMs);
    });
  }

  reload(): void {
    try {
      this.#apply(readRecords(this.#opts.path));
    } catch (err) {
      this.#opts.onReload({ ok: false, error: err as Error });
    }
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#watcher?.close();
  }

  #apply(state: RecordsState): void {
    // A digest, not the text: 100k endpoints' state is 17 MB of JSON to keep for one comparison.
    const digest = createHash('sha256').update(JSON.stringify(state)).digest('hex');
    if (digest === this.#last) return; // a touch or a no-op save changes nothing
    this.#last = digest;
    this.#opts.registry.replace(state);
    this.#opts.onReload({ ok: true, generation: this.#opts.registry.generation });
  }
}
