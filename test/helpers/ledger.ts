import { appendFileSync } from 'node:fs';
import type { ExecutionContext } from 'ava';
import { join } from 'node:path';

/**
 * Records that test `by` made kernel objects whose names contain `tags` (a test's unique tag or a
 * whole name), so that the leftover check test/run.mjs runs after the suite knows them as this
 * run's (and whose), and leaves every other run's alone. Outside test/run.mjs a no-op.
 */
export function owned(by: string, ...tags: string[]): void {
  const dir = process.env.TSNET_TEST_RUN_DIR;
  if (dir !== undefined) appendFileSync(join(dir, 'owned'), tags.map((tag) => `${tag}\t${by}\n`).join(''));
}

/**
 * What a helper needs of its caller: a title to own kernel objects by and teardowns, run last
 * first. An ava test is one; a bench makes its own (bench/owner.ts).
 */
export type Owner = Pick<ExecutionContext, 'title' | 'teardown'>;
