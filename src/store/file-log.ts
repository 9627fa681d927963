import { mkdirSync } from 'node:fs';
import { open, readFile, rename, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

/** What a snapshot holds: the live data as of record `seq`; `T` is the store's own shape. */
export interface Snapshot<T> {
  version: 1;
  seq: number;
  state: T;
}

/** One committed change; `seq` orders records across the snapshot and the log. */
export interface Sequenced {
  seq: number;
}

interface Pending {
  line: string;
  durable: () => void;
  failed: (err: Error) => void;
}

const SNAPSHOT = 'snapshot.json';
const LOG = 'log.jsonl';

/** The snapshot is replaced by rename, so it is whole or absent: anything else is damage. */
function parseSnapshot<T>(text: string, file: string): Snapshot<T> {
  let snapshot: Snapshot<T>;
  try {
    snapshot = JSON.parse(text) as Snapshot<T>;
  } catch (err) {
    throw new Error(`store/file: ${file}: unreadable: ${(err as Error).message}`, { cause: err });
  }
  if (snapshot.version !== 1) throw new Error(`store/file: ${file}: unknown version ${String(snapshot.version)}`);
  return snapshot;
}

/** Parses the log's text; a torn or unreadable tail (never acknowledged) ends it. */
function parseLog<R extends Sequenced>(text: string, file: string): { records: R[]; goodBytes: number } {
  const records: R[] = [];
  let goodBytes = 0;
  let torn: number | undefined;
  for (let start = 0; start < text.length; ) {
    const end = text.indexOf('\n', start);
    if (end === -1) break; // a last line without its newline: its write never finished
    const line = text.slice(start, end);
    let record: R | undefined;
    try {
      record = JSON.parse(line) as R;
    } catch {
      torn ??= start;
    }
    if (record !== undefined) {
      if (torn !== undefined) throw new Error(`store/file: ${file}: unreadable line at byte ${torn} before later records: the log is damaged`);
      records.push(record);
      goodBytes = end + 1;
    }
    start = end + 1;
  }
  return { records, goodBytes };
}

/**
 * The file store's disk: a snapshot plus an append-only log of JSON lines. `append` resolves
 * once the record is on disk (fdatasync); records appended while a sync is under way share the
 * next one (group commit). When the log outgrows the live data, a new snapshot replaces it.
 */
export class FileLog<R extends Sequenced, T> {
  readonly #dir: string;
  readonly #fh: FileHandle;
  readonly #snapshotOf: () => Snapshot<T>;
  readonly #compactAfterBytes: number;
  #logBytes: number;
  #snapshotBytes: number;
  #queue: Pending[] = [];
  #flushing: Promise<void> | undefined;
  #broken: Error | undefined;

  private constructor(dir: string, fh: FileHandle, options: { logBytes: number; snapshotBytes: number; compactAfterBytes: number; snapshotOf: () => Snapshot<T> }) {
    this.#dir = dir;
    this.#fh = fh;
    this.#logBytes = options.logBytes;
    this.#snapshotBytes = options.snapshotBytes;
    this.#compactAfterBytes = options.compactAfterBytes;
    this.#snapshotOf = options.snapshotOf;
  }

  /**
   * Reads the snapshot and the log records after it, cuts a torn tail off the log, and opens it
   * for appending. `snapshotOf` is called whenever a compaction needs the live data.
   */
  /** With `readOnly`, nothing is created, truncated or written: another process may be appending. */
  static async open<R extends Sequenced, T>(options: { dir: string; compactAfterBytes: number; snapshotOf: () => Snapshot<T>; readOnly?: boolean }): Promise<{ log: FileLog<R, T>; snapshot: Snapshot<T> | undefined; records: R[] }> {
    const { dir, readOnly = false } = options;
    if (!readOnly) mkdirSync(dir, { recursive: true, mode: 0o700 });
    const snapshotText = await readFile(join(dir, SNAPSHOT), 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw new Error(`store/file: reading ${join(dir, SNAPSHOT)}: ${err.message}`, { cause: err });
    });
    const snapshot = snapshotText === undefined ? undefined : parseSnapshot<T>(snapshotText, join(dir, SNAPSHOT));
    const file = join(dir, LOG);
    const fh = await open(file, readOnly ? 'r' : 'a+', 0o600);
    try {
      const { records, goodBytes } = parseLog<R>(await fh.readFile('utf8'), file);
      const { size } = await fh.stat();
      if (size > goodBytes && !readOnly) {
        await fh.truncate(goodBytes);
        await fh.datasync();
      }
      // Records up to the snapshot's are in it already (a crash between its rename and the log's truncation).
      const after = records.filter((r) => r.seq > (snapshot?.seq ?? 0));
      const log = new FileLog<R, T>(dir, fh, { ...options, logBytes: goodBytes, snapshotBytes: snapshotText?.length ?? 0 });
      return { log, snapshot, records: after };
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /** Resolves once `record` is durable; after a failed write every append rejects. */
  append(record: R): Promise<void> {
    if (this.#broken !== undefined) return Promise.reject(this.#broken);
    return new Promise((durable, failed) => {
      this.#queue.push({ line: `${JSON.stringify(record)}\n`, durable, failed });
      this.#flushing ??= this.#flush().finally(() => (this.#flushing = undefined));
    });
  }

  /** Waits for every record appended so far, then closes the file. */
  async close(): Promise<void> {
    await this.#flushing;
    await this.#fh.close();
  }

  async #flush(): Promise<void> {
    // One tick's worth of appends gathers before the first write.
    await new Promise((r) => setImmediate(r));
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0);
      const text = batch.map((p) => p.line).join('');
      try {
        await this.#fh.write(text);
        await this.#fh.datasync();
      } catch (err) {
        this.#broken = new Error(`store/file: writing ${join(this.#dir, LOG)}: ${(err as Error).message}`, { cause: err });
        for (const p of [...batch, ...this.#queue.splice(0)]) p.failed(this.#broken);
        return;
      }
      this.#logBytes += Buffer.byteLength(text);
      for (const p of batch) p.durable();
      if (this.#logBytes > Math.max(this.#compactAfterBytes, 2 * this.#snapshotBytes)) await this.#compact();
    }
  }

  /** Writes a snapshot of the live data (temp file, fsync, rename, fsync dir), then empties the log. */
  async #compact(): Promise<void> {
    const text = JSON.stringify(this.#snapshotOf());
    const final = join(this.#dir, SNAPSHOT);
    const tmp = `${final}.tmp`;
    try {
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(text);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, final);
      const dir = await open(this.#dir, 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
      await this.#fh.truncate(0);
      await this.#fh.datasync();
    } catch (err) {
      // The log still holds everything: a failed compaction loses nothing, so it is only retried later.
      this.#snapshotBytes = this.#logBytes;
      process.emitWarning(`store/file: compacting ${this.#dir}: ${(err as Error).message}`);
      return;
    }
    this.#logBytes = 0;
    this.#snapshotBytes = text.length;
  }
}
