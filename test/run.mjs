// Runs the ava suite with its TAP reporter and ends with the runner's own counts on one line,
// `N passed, N failed`, which CI reads.
import { spawn } from 'node:child_process';
import { readlinkSync } from 'node:fs';

const ava = spawn(new URL('../node_modules/.bin/ava', import.meta.url).pathname, ['--tap', ...process.argv.slice(2)], {
  stdio: ['ignore', 'pipe', 'inherit'],
  // Tests check that nothing they start has wandered out of the namespace the run began in.
  env: { ...process.env, TSNET_TEST_HOST_NETNS: readlinkSync('/proc/self/ns/net') },
});
let passed = 0;
let failed = 0;
let skipped = 0;
let rest = '';
ava.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  const lines = (rest + chunk.toString()).split('\n');
  rest = lines.pop() ?? '';
  for (const line of lines) {
    const pass = /^# pass (\d+)/.exec(line);
    const fail = /^# fail (\d+)/.exec(line);
    const skip = /^# skip (\d+)/.exec(line);
    if (pass) passed = Number(pass[1]);
    if (fail) failed = Number(fail[1]);
    if (skip) skipped = Number(skip[1]);
  }
});
ava.on('close', (code) => {
  process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
  process.exit(code ?? 1);
});
