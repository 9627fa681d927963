import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startDaemon } from './helpers/daemon.js';
import { startUpstream } from './helpers/upstream.js';

const BIN = new URL('../bin/tsnet', import.meta.url).pathname;

/** Runs a second `tsnet daemon` and waits up to 10 s for it to exit; one still running is killed and reported as such. */
function secondDaemon(t: ExecutionContext, socket: string, stateDir: string): Promise<{ code: number | null; stderr: string }> {
  const tag = randomBytes(3).toString('hex');
  const args = [BIN, '--socket', socket, 'daemon', '--state-dir', stateDir, '--upstream', '127.0.0.1:9', '--bridge', `tsx${tag}`, '--bip', '10.253.77.0/24', '--nft-table', `tsnet_x${tag}`, '--netns-prefix', `tsnet-x${tag}-`, '--log-level', 'warn'];
  const c = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => c.kill('SIGKILL'));
  let stderr = '';
  c.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      c.kill('SIGKILL');
      resolve({ code: null, stderr: `${stderr}(still running after 10 s)` });
    }, 10_000);
    c.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

function scratch(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'tsnet-second-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test.serial('a second daemon on the same state directory exits non-zero naming it, and the first keeps its socket', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const stateDir = d.stateDir;
  const second = await secondDaemon(t, join(scratch(t), 'other.sock'), stateDir);
  t.not(second.code, 0);
  t.not(second.code, null);
  t.regex(second.stderr, new RegExp(`another tsnet daemon \\(pid \\d+\\) is using the state directory ${stateDir}`));
  t.regex(await d.tsnet('network', 'ls'), /bridge/, 'the first daemon still answers on its socket');
});

test.serial('a second daemon on the same socket exits non-zero naming it and leaves the socket to the first', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const second = await secondDaemon(t, d.socket, join(scratch(t), 'state'));
  t.not(second.code, 0);
  t.not(second.code, null);
  t.regex(second.stderr, new RegExp(`another tsnet daemon \\(pid \\d+\\) is using the control socket ${d.socket}`));
  t.regex(await d.tsnet('network', 'ls'), /bridge/, 'the first daemon still answers on its socket');
});

test.serial('the control socket is mode 0600 in a directory of mode 0700; a killed daemon restarts on its own lock', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  t.is(statSync(d.socket).mode & 0o777, 0o600);
  t.is(statSync(dirname(d.socket)).mode & 0o777, 0o700);
  // The lock is the kernel's: it dies with a kill -9, and the next daemon takes it at once.
  await d.kill9();
  await d.start();
  t.regex(await d.tsnet('network', 'ls'), /bridge/);
});
