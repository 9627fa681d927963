/**
 * Runs `fn` over `items` with at most `limit` at once, in order of start; resolves when all have
 * settled (`fn` handles its own errors). The kernel work of independent sandboxes overlaps this
 * way: most of each is waiting for an `ip` process, not the daemon's thread.
 */
export async function forEachBounded<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
