import test from 'ava';
import { existsSync } from 'node:fs';
import { call, ControlError } from '../src/control/client.js';
import { startDaemon } from './helpers/daemon.js';
import { startUpstream } from './helpers/upstream.js';

/** The status and message of a control API call that is expected to fail. */
const refusal = (socket: string, method: string, path: string, body: unknown): Promise<{ status: number; message: string }> =>
  call(socket, method, path, body).then(
    () => ({ status: 0, message: 'accepted' }),
    (err: Error) => ({ status: err instanceof ControlError ? err.status : -1, message: err.message }),
  );

test.serial('sandbox fields that could add a line to resolv.conf or hosts, or a name nobody may ask, are refused with 400 and the field named', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'app');
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'other');
  await d.tsnet('sandbox', 'create', '--name', 'db', '--network', 'app');
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ dnsOptions: ['ndots:0\nnameserver 6.6.6.6'] }, /^dnsOptions\[0\]: .* is not a resolv\.conf option/],
    [{ hostname: 'evil\n6.6.6.6 web' }, /^hostname: .* is not a valid name/],
    [{ aliases: ['a;b'] }, /^aliases\[0\]: "a;b" is not a valid name/],
    [{ networks: [{ network: 'app', aliases: ['ok', 'x y'] }] }, /^network app: aliases\[1\]: "x y" is not a valid name/],
    [{ dnsSearch: ['example.test\nnameserver 6.6.6.6'] }, /^dnsSearch\[0\]: .* is not a domain name/],
    [{ dnsSearch: ['-bad.example'] }, /^dnsSearch\[0\]: .* is not a domain name/],
    [{ dns: ['6.6.6.6:53'] }, /^dns\[0\]: "6\.6\.6\.6:53" is not an IP address/],
    [{ dns: ['resolver.example'] }, /^dns\[0\]: .* is not an IP address/],
    [{ links: ['db:a;b'] }, /^links\[0\]\.alias: "a;b" is not a valid name/],
    [{ links: ['db:x:y'] }, /^links\[0\]: "db:x:y" is not NAME or NAME:ALIAS/],
  ];
  for (const [fields, message] of bad) {
    const r = await refusal(d.socket, 'POST', '/sandboxes/create', { name: 'victim', networks: [{ network: 'app' }], ...fields });
    t.is(r.status, 400, JSON.stringify(fields));
    t.regex(r.message, message, JSON.stringify(fields));
  }
  t.notRegex(await d.tsnet('sandbox', 'ls'), /victim/, 'nothing was created');
  t.false(existsSync(`/run/netns/${d.netnsPrefix}victim`));
  const connect = await refusal(d.socket, 'POST', '/networks/other/connect', { Container: 'db', EndpointConfig: { Aliases: ['a;b'] } });
  t.deepEqual([connect.status, connect.message], [400, 'network other: aliases[0]: "a;b" is not a valid name (letters, digits, \'_\', \'.\', \'-\'; up to 63)']);
  t.deepEqual(Object.keys(JSON.parse(await d.tsnet('sandbox', 'inspect', 'db'))[0].Networks), ['app'], 'the refused connect left db as it was');
  t.regex((await d.fails('sandbox', 'create', '--name', 'victim', '--network', 'app', '--dns-option', 'ndots:1 rotate')).stderr, /dnsOptions\[0\]/);

  // The same fields, valid, land in the files as one entry each and the alias resolves.
  await d.tsnet('sandbox', 'create', '--name', 'web', '--network', 'app', '--hostname', 'webhost', '--alias', 'www', '--dns-search', 'example.test', '--dns-option', 'ndots:2', '--dns-option', 'rotate', '--link', 'db:database', '--dns', '127.0.0.1');
  const resolv = (await d.tsnet('exec', 'web', '--', 'cat', '/etc/resolv.conf')).split('\n').filter((l) => !l.startsWith('#') && l !== '');
  t.deepEqual(resolv, ['nameserver 127.0.0.11', 'search example.test', 'options ndots:2 rotate']);
  t.regex(await d.tsnet('exec', 'web', '--', 'cat', '/etc/hosts'), /\tdatabase [0-9a-f]{12} db\n/);
  t.regex(await d.tsnet('exec', 'db', '--', 'dig', '+short', 'www'), /^10\./);
  t.regex(await d.tsnet('exec', 'db', '--', 'dig', 'a;b'), /status: NXDOMAIN/);
});
