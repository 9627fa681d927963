import test from 'ava';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';

// The built runner (npm test builds first): only there does the helper process exist, and the
// daemon runs that one. Sources run by tsx spawn tools directly.
const BUILT = new URL('../../../dist/src/net/exec/tool-runner.js', import.meta.url).pathname;
const run = promisify(execFile);

test('through the helper: stdout, stderr and exit codes come back, input is fed, a hung tool is killed at its timeout, a missing one is reported', async (t) => {
  t.true(existsSync(BUILT), `${BUILT}: run npm run build first`);
  const { runTool, toolOutput } = (await import(BUILT)) as typeof import('./tool-runner.js');
  t.is(await toolOutput('/bin/sh', ['-c', 'echo out; echo err >&2']), 'out\n');
  const failed = await runTool('/bin/sh', ['-c', 'echo why >&2; exit 3']);
  t.like(failed, { code: 3, stderr: 'why\n' });
  t.is(await toolOutput('/bin/cat', [], { input: 'fed\n' }), 'fed\n');
  const started = Date.now();
  const hung = await runTool('/bin/sleep', ['30'], { timeoutMs: 300 });
  t.like(hung, { code: null, signal: 'SIGKILL' });
  t.true(Date.now() - started < 5000);
  t.truthy((await runTool('/nonexistent/tool', [])).error);
  await t.throwsAsync(toolOutput('/bin/sh', ['-c', 'exit 2']), { message: /^sh -c exit 2: exit 2$/ });
  // Many at once are each answered with their own result.
  const many = await Promise.all(Array.from({ length: 50 }, (_, i) => toolOutput('/bin/echo', [String(i)])));
  t.deepEqual(many, Array.from({ length: 50 }, (_, i) => `${i}\n`));
});

test('a process that used the runner still exits by itself, and its helper goes with it', async (t) => {
  t.true(existsSync(BUILT));
  const mark = `TSNET_RUNNER_MARK=${randomBytes(6).toString('hex')}`;
  const script = `const { toolOutput } = await import(${JSON.stringify(BUILT)}); process.stdout.write(await toolOutput('/bin/echo', ['done']));`;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { timeout: 10_000, env: { ...process.env, [mark.split('=')[0]!]: mark.split('=')[1]! } });
  t.is(stdout, 'done\n');
  // The helper inherited the mark in its environment: no process may still carry it.
  const carriers = (): string[] =>
    readdirSync('/proc').filter((pid) => /^\d+$/.test(pid) && (() => {
      try {
        return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(mark);
      } catch {
        return false;
      }
    })());
  for (let i = 0; i < 20 && carriers().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
  t.deepEqual(carriers(), []);
});
