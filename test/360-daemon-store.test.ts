import test from 'ava';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSavedState } from '../src/daemon/saved-state.js';
import { FileStore } from '../src/store/file-store.js';
import { startDaemon, webAndClientOnApp } from './helpers/daemon.js';
import { startUpstream } from './helpers/upstream.js';

/** Every key and value a file store directory holds, read without writing. */
async function contents(dir: string): Promise<Map<string, unknown>> {
  const store = await FileStore.open({ dir, readOnly: true });
  try {
    return new Map((await store.list('')).kvs.map((kv) => [kv.key, kv.value]));
  } finally {
    await store.close();
  }
}

test.serial('the daemon keeps one key per object in its store, and what only this host knows in its local store', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  await d.tsnet('sandbox', 'create', '--name', 'web', '--network', 'app', '--alias', 'www');
  await d.tsnet('service', 'create', '--name', 'api', '--network', 'app', '--port', 'http:tcp:80');
  await d.tsnet('service', 'task', 'add', 'api', '--sandbox', 'web');
  const cluster = await contents(join(d.stateDir, 'store'));
  const keys = [...cluster.keys()];
  const net = JSON.parse(await d.tsnet('network', 'inspect', 'app'))[0] as { Id: string };
  const sb = JSON.parse(await d.tsnet('sandbox', 'inspect', 'web'))[0] as { Id: string };
  t.true(keys.includes(`networks/${net.Id}`), 'the network');
  t.is(keys.filter((k) => k.startsWith('sandboxes/') && k.endsWith(`/${sb.Id}`)).length, 1, 'the sandbox, under its node');
  const endpoints = keys.filter((k) => k.startsWith(`endpoints/${net.Id}/`));
  t.is(endpoints.length, 1, 'its endpoint on app');
  t.like(cluster.get(endpoints[0]!), { sandbox: { id: sb.Id, name: 'web' }, aliases: ['www'] });
  t.is(keys.filter((k) => k.startsWith('services/')).length, 1);
  t.is(keys.filter((k) => k.startsWith('tasks/')).length, 1);
  const text = JSON.stringify([...cluster.values()]);
  for (const local of ['hostIf', 'fileHashes', 'ownsNetns', d.netnsPrefix]) t.false(text.includes(local), `${local} stays out of the cluster store`);
  const local = await contents(join(d.stateDir, 'local'));
  t.like(local.get(`sandboxes/${sb.Id}`), { netns: `${d.netnsPrefix}web`, ownsNetns: true });
});

test.serial('a state file from before the store is imported once: everything in it is back, answering, and the file is kept beside', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await webAndClientOnApp(d);
  await d.kill9();
  // What an older daemon left: its one state file, and no store.
  writeFileSync(join(d.stateDir, 'state.json'), JSON.stringify(await readSavedState(d.stateDir, d.netnsPrefix)));
  for (const dir of ['store', 'local']) rmSync(join(d.stateDir, dir), { recursive: true, force: true });
  await d.start();
  t.regex(await d.tsnet('exec', 'client', '--', 'getent', 'hosts', 'web'), /web/);
  t.false(existsSync(join(d.stateDir, 'state.json')));
  t.true(existsSync(join(d.stateDir, 'state.json.imported')));
  t.deepEqual((await d.saved()).sandboxes.map((s) => s.name).sort(), ['client', 'web']);
  await d.kill9();
  await d.start();
  t.deepEqual(JSON.parse(await d.tsnet('sandbox', 'ls', '--format', 'json')).map((s: { Name: string }) => s.Name).sort(), ['client', 'web'], 'and not imported twice');
});
