import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { waitForDns } from '../bench/procs.js';

const run = promisify(execFile);
const ROOT = new URL('..', import.meta.url).pathname;

/** The walk-through's dig lines with what their comment promises: the words before two spaces. */
function walkthrough(): { args: string[]; expect: string[]; line: string }[] {
  const readme = readFileSync(`${ROOT}README.md`, 'utf8');
  const block = /## Walk-through[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)![1]!;
  return block
    .split('\n')
    .filter((l) => l.startsWith('dig '))
    .map((line) => {
      const [cmd, comment = ''] = line.split('#');
      const pipe = cmd!.split('|')[0]!.trim();
      return { args: pipe.split(/\s+/).slice(1), expect: comment.trim().split(/\s{2,}/)[0]!.split(' '), line };
    });
}

test('the README walk-through gives the answers its comments promise', async (t) => {
  const port = 30000 + Math.floor(Math.random() * 20000);
  const child = spawn('bash', [`${ROOT}examples/start.sh`, '--log-level', 'warn'], {
    env: { ...process.env, PORT: String(port), UPSTREAM_PORT: String(port + 1) },
    stdio: 'ignore',
    detached: true,
  });
  t.teardown(() => process.kill(-child.pid!, 'SIGTERM'));
  await waitForDns(port, 20_000);
  const lines = walkthrough();
  t.true(lines.length >= 10);
  for (const { args, expect, line } of lines) {
    const { stdout } = await run('dig', args.map((a) => (a === '5353' ? String(port) : a)));
    for (const word of expect) t.true(stdout.includes(word), `${line}\n→ ${stdout}`);
  }
});

test('the package exports createServer and Registry by its name', async (t) => {
  const mod = (await import('tsnet-dns')) as typeof import('../src/index.js');
  const server = mod.createServer({ registry: mod.Registry.fromRecords({ networks: [{ name: 'n' }] }), upstreams: [] });
  const listener = await server.listen({ address: '127.0.0.1', port: 0 });
  t.true(listener.port > 0);
  await server.close();
});
