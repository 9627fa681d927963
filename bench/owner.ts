import type { Owner } from '../test/helpers/ledger.js';

/**
 * An owner for the test helpers outside ava: teardowns run last first, as ava runs them, when
 * `done` is called (the bench calls it in `finally`, so a failed run cleans up too).
 */
export function benchOwner(title: string): Owner & { done(): Promise<void> } {
  const teardowns: (() => void | Promise<void>)[] = [];
  return {
    title,
    teardown: (fn) => void teardowns.push(fn),
    done: async () => {
      for (const fn of teardowns.reverse()) {
        try {
          await fn();
        } catch (err) {
          process.stderr.write(`bench teardown: ${(err as Error).message}\n`);
        }
      }
    },
  };
}
