import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { records } from './fixtures.js';

const BIN = new URL('../bin/tsnet-dns', import.meta.url).pathname;
const run = promisify(execFile);

async function fails(args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    await run(process.execPath, [BIN, ...args], { timeout: 5000 });
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
  throw new Error(`tsnet-dns ${args.join(' ')} succeeded`);
}

test('--help documents every option', async (t) => {
  const { stdout } = await run(process.execPath, [BIN, '--help']);
  for (const opt of ['--listen', '--records', '--no-watch', '--upstream', '--scope', '--ttl', '--resolvers', '--max-inflight', '--cache-size', '--replay-size', '--cache-bytes', '--allow', '--rate-limit', '--tcp-max-connections', '--udp-receive-queue', '--log-level', '--metrics']) {
    t.true(stdout.includes(opt), opt);
  }
});

test('a bad records file at start-up exits non-zero naming the field and value', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsnet-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const doc = records();
  doc.endpoints[3] = { ...doc.endpoints[3]!, networks: { 'lo-a': { ipv4: '300.1.1.1' } } } as never;
  writeFileSync(join(dir, 'r.json'), JSON.stringify(doc));
  const r = await fails(['--records', join(dir, 'r.json'), '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:9']);
  t.is(r.code, 1);
  t.regex(r.stderr, /endpoints\[3\]\.networks\.lo-a\.ipv4: "300\.1\.1\.1" is not an IPv4 address/);
});

test('bad options are refused with the value named', async (t) => {
  t.regex((await fails(['--upstream', 'nonsense'])).stderr, /upstream "nonsense"/);
  t.regex((await fails(['--listen', '127.0.0.1:99999'])).stderr, /listen "127\.0\.0\.1:99999": bad port/);
  t.regex((await fails(['--ttl', '-3'])).stderr, /--ttl/);
  t.regex((await fails(['--resolvers', 'local,bogus', '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:9'])).stderr, /unknown resolver "bogus"/);
  t.regex((await fails(['--records', '/nonexistent/records.json'])).stderr, /ENOENT/);
});

test('a listen address that is taken is an error naming it', async (t) => {
  const { createSocket } = await import('node:dgram');
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  t.teardown(() => s.close());
  const port = s.address().port;
  const r = await fails(['--listen', `127.0.0.1:${port}`, '--upstream', '127.0.0.1:9']);
  t.regex(r.stderr, new RegExp(`udp 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
});
