import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { FileStore, type FileStoreOptions } from './file-store.js';
import { putLatency, record, storeCases } from './store.case.js';
import { put, type Store } from './store.js';

/** A state dir of the test's own, removed when it ends, pass or fail. */
function stateDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'tsnet-filestore-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'state');
}

/** Opens a FileStore on `dir` that is closed when the test ends. */
async function openIn(t: ExecutionContext, dir: string, options: Omit<FileStoreOptions, 'dir'> = {}): Promise<Store> {
  const store = await FileStore.open({ dir, ...options });
  t.teardown(() => store.close());
  return store;
}

storeCases('file', {
  open: async (t) => {
    const dir = stateDir(t);
    let store = await openIn(t, dir);
    return {
      store,
      reopen: async () => {
        await store.close();
        store = await openIn(t, dir);
        return store;
      },
    };
  },
  leaseTtl: 1,
});

test('file: the state dir is made 0700', async (t) => {
  const dir = stateDir(t);
  await openIn(t, dir);
  t.is(statSync(dir).mode & 0o777, 0o700);
});

test('file: a torn last line (a write the crash cut) is dropped; the log goes on after it', async (t) => {
  const dir = stateDir(t);
  const first = await FileStore.open({ dir });
  await put(first, 'a', 1);
  await first.close();
  appendFileSync(join(dir, 'log.jsonl'), '{"seq":2,"rev":3,"changes":[{"put":"b","js');
  const second = await FileStore.open({ dir });
  t.deepEqual((await second.list('')).kvs.map((kv) => kv.key), ['a']);
  await put(second, 'c', 3);
  await second.close();
  const third = await openIn(t, dir);
  t.deepEqual((await third.list('')).kvs.map((kv) => kv.key), ['a', 'c']);
});

test('file: a damaged line with records after it is refused, not skipped', async (t) => {
  const dir = stateDir(t);
  const first = await FileStore.open({ dir });
  await put(first, 'a', 1);
  await first.close();
  const log = join(dir, 'log.jsonl');
  appendFileSync(log, `garbage\n${readFileSync(log, 'utf8')}`);
  await t.throwsAsync(FileStore.open({ dir }), { message: /store\/file: .*damaged/ });
});

test('file: the log is compacted into a snapshot, and the data survives it', async (t) => {
  const dir = stateDir(t);
  const store = await FileStore.open({ dir, compactAfterBytes: 4096 });
  for (let i = 0; i < 300; i++) await put(store, `k/${i % 20}`, { i });
  const { kvs, revision } = await store.list('');
  await store.close();
  t.true(statSync(join(dir, 'log.jsonl')).size < 8192, 'the log was cut');
  t.true(statSync(join(dir, 'snapshot.json')).size > 0);
  const again = await openIn(t, dir);
  t.deepEqual(await again.list(''), { kvs, revision });
});

test('file: a watch from before the kept history is reset; one from inside it replays', async (t) => {
  const dir = stateDir(t);
  const store = await openIn(t, dir, { historyRevisions: 5 });
  const start = (await store.list('')).revision;
  for (let i = 0; i < 10; i++) await put(store, `h/${i}`, i);
  const old = record(store, 'h/', start);
  const recent = record(store, 'h/', start + 7);
  await recent.until(3);
  t.deepEqual(recent.changes.map((c) => c.revision), [start + 8, start + 9, start + 10]);
  await new Promise((r) => setTimeout(r, 50));
  t.is(old.resets.length, 1);
  t.is(old.changes.length, 0);
});

test('file: after a restart a watch from a revision the log still holds replays it', async (t) => {
  const dir = stateDir(t);
  const first = await FileStore.open({ dir });
  const start = (await first.list('')).revision;
  await put(first, 'x/1', 1);
  await put(first, 'x/2', 2);
  await first.close();
  const second = await openIn(t, dir);
  const seen = record(second, 'x/', start + 1);
  await seen.until(1);
  t.deepEqual(seen.changes.map((c) => c.revision), [start + 2]);
});

test('file: every acknowledged txn is there after a kill -9 mid-writes (and mid-compactions)', async (t) => {
  const dir = stateDir(t);
  const writer = new URL('../../test/helpers/file-store-writer.ts', import.meta.url).pathname;
  const child = spawn(process.execPath, ['--import=tsx', writer, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const acked: number[] = [];
  let rest = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      const lines = (rest + d.toString()).split('\n');
      rest = lines.pop()!;
      acked.push(...lines.map(Number));
      if (acked.length >= 2000) resolve();
    });
    child.once('exit', (code) => reject(new Error(`writer exited ${code}: ${stderr}`)));
  });
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
  const store = await openIn(t, dir);
  const present = new Set((await store.list('crash/')).kvs.map((kv) => Number(kv.key.slice('crash/'.length))));
  const missing = acked.filter((i) => !present.has(i));
  t.deepEqual(missing, [], `${acked.length} acknowledged, ${present.size} present`);
});

test('file: latency of one put alone and throughput of many at once', async (t) => {
  const store = await openIn(t, stateDir(t));
  t.log(await putLatency(store, store, 1000));
  const start = performance.now();
  await Promise.all(Array.from({ length: 1000 }, (_, i) => put(store, `par/${i}`, { i })));
  const ms = performance.now() - start;
  t.log(`1000 parallel puts: ${ms.toFixed(0)} ms in all, ${Math.round(1000 / (ms / 1000))}/s`);
  t.is((await store.list('par/')).kvs.length, 1000);
});
