import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { startDaemon } from './helpers/daemon.js';
import { testNetns } from './helpers/netns.js';
import { startUpstream } from './helpers/upstream.js';

const run = promisify(execFile);
const exists = (ns: string): boolean => existsSync(`/run/netns/${ns}`);

test.serial('a namespace with the prefix that tsnet did not make survives daemon starts and a restart after kill -9', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  // The daemon's helper removes every namespace with its prefix at the end, this one included.
  const foreign = `${d.netnsPrefix}foreign`;
  await run('ip', ['netns', 'add', foreign]);
  await d.kill9();
  await d.start();
  t.true(exists(foreign), 'kept across a start');
  await d.kill9();
  await d.start();
  t.true(exists(foreign), 'kept across a restart');
  t.is((await run('ip', ['-n', foreign, '-j', 'link', 'show', 'dev', 'lo'])).stdout.includes('ifalias'), false, 'and left unmarked');
});

test.serial("a namespace of this daemon's that a crash left out of the state is removed at the next start; a foreign one stays", async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await d.tsnet('sandbox', 'create', '--name', 'kept', '--network', 'none');
  await d.tsnet('sandbox', 'create', '--name', 'lost', '--network', 'none');
  const foreign = `${d.netnsPrefix}foreign`;
  await run('ip', ['netns', 'add', foreign]);
  // A namespace made and not yet marked when the daemon died: named by the daemon's intent only.
  const half = `${d.netnsPrefix}half`;
  await run('ip', ['netns', 'add', half]);
  writeFileSync(join(d.stateDir, 'netns', half), '');
  await d.kill9();
  // As if the daemon died after making `lost` in the kernel and before saving it.
  await d.editSaved((state) => ({ ...state, sandboxes: state.sandboxes.filter((s) => s.name !== 'lost') }));
  await d.start();
  t.false(exists(`${d.netnsPrefix}lost`), "the daemon's own leftover is removed");
  t.false(exists(half), 'so is one it made and had not marked yet');
  t.false(existsSync(join(d.stateDir, 'netns', half)), 'with its intent');
  t.true(exists(`${d.netnsPrefix}kept`), 'the state keeps its own');
  t.true(exists(foreign), 'the foreign namespace stays');
});

test.serial("another daemon's namespaces are never its leftovers", async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const other = await startDaemon(t, up.label);
  await other.tsnet('sandbox', 'create', '--name', 'theirs', '--network', 'none');
  const theirs = `${other.netnsPrefix}theirs`;
  // Mounted again under this daemon's prefix, it still carries the other daemon's mark.
  const moved = `${d.netnsPrefix}theirs`;
  await run('touch', [`/run/netns/${moved}`]);
  await run('mount', ['--bind', `/run/netns/${theirs}`, `/run/netns/${moved}`]);
  await d.kill9();
  await d.start();
  t.true(exists(moved));
});

test.serial("an adopted namespace's mount that a crash left out of the state is removed, and the runtime's namespace lives on", async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const runtime = await testNetns(t);
  await d.tsnet('sandbox', 'create', '--name', 'adopted', '--network', 'none', '--netns', runtime.path);
  const mount = `${d.netnsPrefix}adopted`;
  t.true(exists(mount));
  await d.kill9();
  await d.editSaved((state) => ({ ...state, sandboxes: state.sandboxes.filter((s) => s.name !== 'adopted') }));
  await d.start();
  t.false(exists(mount), 'the mount the daemon made is gone');
  t.true(exists(runtime.name), "the runtime's namespace is not");
  t.regex(await runtime.exec('ip', 'link', 'show', 'lo'), /lo:/);
});
