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

interface RecordsText {
  readonly file: string;
  readonly text: string;
}

/** The text of a records file, or of every `*.json` in a directory (sorted by name). */
function readTexts(path: string): RecordsText[] {
  const files = statSync(path).isDirectory()
    ? readdirSync(path)
        .filter((f) => f.endsWith('.json'))
        .sort()
        .map((f) => join(path, f))
    : [path];
  return files.map((file) => ({ file, text: readFileSync(file, 'utf8') }));
}

/** Reads a records file, or every `*.json` in a directory merged into one document (sorted by name). */
export function readRecords(path: string): RecordsState {
  return parseTexts(path, readTexts(path));
}

function parseTexts(path: string, texts: readonly RecordsText[]): RecordsState {
  const files = texts.map((t) => t.file);
  const merged = { networks: [] as unknown[], endpoints: [] as unknown[], services: [] as unknown[] };
  for (const { file, text } of texts) {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
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
    this.#load();
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
      this.#load();
    } catch (err) {
      this.#opts.onReload({ ok: false, error: err as Error });
    }
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#watcher?.close();
  }

  /** Reads the files and swaps their state in, unless they hold the very bytes last loaded (a touch, a no-op save). */
  #load(): void {
    const texts = readTexts(this.#opts.path);
    // A digest of the bytes, not the text kept: 100k endpoints are 17 MB to hold for one comparison.
    const hash = createHash('sha256');
    for (const { file, text } of texts) hash.update(`${file}\0${text.length}\0`).update(text);
    const digest = hash.digest('hex');
    if (digest === this.#last) return;
    const state = parseTexts(this.#opts.path, texts);
    this.#last = digest;
    this.#opts.registry.replace(state);
    this.#opts.onReload({ ok: true, generation: this.#opts.registry.generation });
  }
}
