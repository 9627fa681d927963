// A child process for the crash test of src/store/file-store.test.ts: puts keys into the
// FileStore at argv[2] from 8 writers at once, printing each key once its txn is acknowledged,
// until it is killed.
import { FileStore } from '../../src/store/file-store.js';
import { put } from '../../src/store/store.js';

const store = await FileStore.open({ dir: process.argv[2]!, compactAfterBytes: 16 * 1024 });
let next = 0;
await Promise.all(
  Array.from({ length: 8 }, async () => {
    for (;;) {
      const i = next++;
      await put(store, `crash/${String(i).padStart(6, '0')}`, { i, pad: 'x'.repeat(100) });
      process.stdout.write(`${i}\n`);
    }
  }),
);
