// Runs the ava suite with its TAP reporter, then the leftover check (test/leftovers.mjs) as the
// last test, and ends with the runner's own counts on one line, `N passed, N failed`, which CI reads.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { leftovers } from './leftovers.mjs';

// Everything the suite starts inherits the run's id; the helpers record the names they make in its ledger.
const runId = randomBytes(6).toString('hex');
const runDir = mkdtempSync(join(tmpdir(), 'tsnet-run-'));
const ava = spawn(new URL('../node_modules/.bin/ava', import.meta.url).pathname, ['--tap', ...process.argv.slice(2)], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: {
    ...process.env,
    // Tests check that nothing they start has wandered out of the namespace the run began in.
    TSNET_TEST_HOST_NETNS: readlinkSync('/proc/self/ns/net'),
    TSNET_TEST_RUN: runId,
    TSNET_TEST_RUN_DIR: runDir,
  },
});
// ava's own summary (`# pass N`…); its per-test lines stand in when it dies before printing one.
const summary = { pass: undefined, fail: undefined, skip: undefined };
const lines = { pass: 0, fail: 0, skip: 0 };
let rest = '';
ava.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  const all = (rest + chunk.toString()).split('\n');
  rest = all.pop() ?? '';
  for (const line of all) {
    const total = /^# (pass|fail|skip) (\d+)/.exec(line);
    if (total) summary[total[1]] = Number(total[2]);
    if (/^not ok \d+/.test(line)) lines.fail++;
    else if (/^ok \d+.*# SKIP/.test(line)) lines.skip++;
    else if (/^ok \d+/.test(line)) lines.pass++;
  }
});
ava.on('close', async (code) => {
  let passed = summary.pass ?? lines.pass;
  let failed = summary.fail ?? lines.fail;
  const skipped = summary.skip ?? lines.skip;
  if (code !== 0 && failed === 0) {
    // A crash, a timeout the reporter choked on, or a file that did not load: never a green line.
    failed++;
    process.stdout.write(`not ok - ava exited with code ${code} without reporting a failed test\n`);
  }
  const left = await leftovers(runId, runDir).catch((err) => [`the check itself failed: ${err.message}`]);
  rmSync(runDir, { recursive: true, force: true });
  const name = 'leftovers › after the whole suite no namespace, link, nft table or process of this run is left';
  if (left.length === 0) {
    passed++;
    process.stdout.write(`ok - ${name}\n`);
  } else {
    failed++;
    process.stdout.write(`not ok - ${name}\n${left.map((l) => `  # left (now removed): ${l}\n`).join('')}`);
  }
  if (skipped) process.stdout.write(`# ${skipped} skipped\n`);
  process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
  process.exit(left.length > 0 ? 1 : (code ?? 1));
});
