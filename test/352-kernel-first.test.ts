import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { startDaemon, type TestDaemon } from './helpers/daemon.js';
import { startUpstream } from './helpers/upstream.js';

const run = promisify(execFile);

/** Whether the test itself can listen on 127.0.0.1:port (the daemon holds published ports). */
const free = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ host: '127.0.0.1', port, exclusive: true }, () => s.close(() => resolve(true)));
  });


async function daemonWithApp(t: ExecutionContext): Promise<TestDaemon> {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  return d;
}

test.serial('a service the kernel refuses is not saved and its host port is released', async (t) => {
  const d = await daemonWithApp(t);
  await d.tsnet('sandbox', 'create', '--name', 'ok', '--network', 'app');
  await d.tsnet('sandbox', 'create', '--name', 'victim', '--network', 'app');
  // The VIP table cannot be written into a namespace that is gone: a real kernel failure.
  await run('ip', ['netns', 'del', `${d.netnsPrefix}victim`]);
  const port = randomInt(20000, 32000);
  const failed = await d.fails('service', 'create', '--name', 'api', '--network', 'app', '--port', 'http:tcp:80', '--publish', `${port}:80`);
  t.regex(failed.stderr, /victim/);
  t.deepEqual(JSON.parse(await d.tsnet('service', 'ls', '--format', 'json')), []);
  t.deepEqual((await d.saved()).services!, [], 'nothing of it was saved');
  t.true(await free(port), 'the host port it reserved is free again');
  const ns = `${d.netnsPrefix}ok`;
  t.notRegex((await run('ip', ['netns', 'exec', ns, 'nft', 'list', 'ruleset'])).stdout, /api/, 'and the sandbox that took the VIP table has it back as before');
});

test.serial('a task the kernel refuses is not saved', async (t) => {
  const d = await daemonWithApp(t);
  await d.tsnet('sandbox', 'create', '--name', 'backend', '--network', 'app');
  await d.tsnet('service', 'create', '--name', 'api', '--network', 'app', '--port', 'http:tcp:80');
  await d.tsnet('sandbox', 'create', '--name', 'victim', '--network', 'app');
  await run('ip', ['netns', 'del', `${d.netnsPrefix}victim`]);
  await d.fails('service', 'task', 'add', 'api', '--sandbox', 'backend');
  t.deepEqual((await d.saved()).services!.map((s) => s.tasks), [[]]);
  t.is((await d.tsnet('exec', 'backend', '--', 'dig', '+short', 'tasks.api')).trim(), '', 'nor answered');
});

test.serial('a sandbox whose removal fails keeps its record and its host port until a removal succeeds', async (t) => {
  const d = await daemonWithApp(t);
  const port = randomInt(20000, 32000);
  await d.tsnet('sandbox', 'create', '--name', 'web', '--network', 'app', '-p', `127.0.0.1:${port}:80`);
  t.false(await free(port));
  // A mount on its files directory makes the last step of the removal fail (EBUSY).
  const files = `/etc/netns/${d.netnsPrefix}web`;
  await run('mount', ['-t', 'tmpfs', 'tsnet-test', files]);
  t.teardown(() => run('umount', [files]).catch(() => {}));
  const failed = await d.fails('sandbox', 'rm', 'web');
  t.regex(failed.stderr, /removing sandbox web/);
  t.deepEqual((await d.saved()).sandboxes.map((s) => s.name), ['web']);
  t.false(await free(port), 'the port stays held while the record holds it');
  await run('umount', [files]);
  await d.tsnet('sandbox', 'rm', 'web');
  t.deepEqual((await d.saved()).sandboxes, []);
  t.true(await free(port), 'and is released with it');
});

test.serial('a network that cannot be restored is reported and the others come back', async (t) => {
  const d = await daemonWithApp(t);
  const parent = `tsd${d.tag}`;
  await run('ip', ['link', 'add', parent, 'type', 'veth', 'peer', 'name', `tsq${d.tag}`]);
  t.teardown(() => run('ip', ['link', 'del', parent]).catch(() => {}));
  await run('ip', ['link', 'set', parent, 'up']);
  await d.tsnet('network', 'create', '--driver', 'macvlan', '-o', `parent=${parent}`, '--subnet', d.subnet(), 'mv');
  await d.tsnet('sandbox', 'create', '--name', 'a', '--network', 'app', '--network', 'mv');
  await d.tsnet('sandbox', 'create', '--name', 'b', '--network', 'app');
  await d.kill9();
  await run('ip', ['link', 'del', parent]);
  await d.start();
  t.regex(d.logs(), /"network":"mv".*network could not be restored/);
  t.truthy((await d.tsnet('exec', 'a', '--', 'getent', 'hosts', 'b')).trim(), 'the other network and its sandboxes are back');
  t.deepEqual(JSON.parse(await d.tsnet('network', 'ls', '--format', 'json')).map((n: { Name: string }) => n.Name).sort(), ['app', 'bridge', 'mv'], 'and the failed one keeps its record');
});
