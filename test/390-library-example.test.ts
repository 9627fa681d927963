import test from 'ava';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { dig } from './helpers/dig.js';

const EXAMPLE = new URL('../dist/examples/embed.js', import.meta.url).pathname;

test('the README\'s library example runs as built: its names answer, its blocklist plugin answers NXDOMAIN, the rest fails with no upstream to ask', async (t) => {
  const child = spawn(process.execPath, [EXAMPLE], { env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  const line = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the example exited with ${code} before listening`)));
    createInterface({ input: child.stdout! }).once('line', resolve);
  });
  const port = Number(/^listening on 127\.0\.0\.1:(\d+)$/.exec(line)?.[1]);
  t.true(port > 0, line);
  for (const name of ['web', 'www', 'web.app']) t.deepEqual((await dig(port, name)).answers.map((a) => a.data), ['172.30.0.2'], name);
  t.is((await dig(port, 'ads.example.com')).status, 'NXDOMAIN');
  t.is((await dig(port, 'other.example.com')).status, 'SERVFAIL', 'no upstream: nothing is forwarded off the machine');
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  t.is(await exited, 0);
});
