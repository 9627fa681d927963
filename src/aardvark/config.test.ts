import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRecords } from '../registry/validate.js';
import { parseNetworkFile, readConfigDir, toRecords } from './config.js';

// What netavark 1.4 wrote for a dual-stack network with three containers (aardvark-compat.md §1).
const MYNET = [
  '10.89.3.1,fd10:88:a::1 192.0.2.53',
  'f031bf33eecba75d0d84952337b1ceef6a239eb8e94b48aee0993d0791345325 10.89.3.2 fd10:88:a::2 web,f031bf33eecb,www 9.9.9.9,2620:fe::fe',
  'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90 10.89.3.3 fd10:88:a::3 db,a1b2c3d4e5f6',
  '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef 10.89.3.4  v4only,0123456789ab',
  '',
].join('\n');

test('a network file as netavark writes it: bind addresses, network DNS, containers with empty fields and their own DNS', (t) => {
  const net = parseNetworkFile('mynet', MYNET);
  t.deepEqual(net.bindIps, ['10.89.3.1', 'fd10:88:a::1']);
  t.deepEqual(net.dns, ['192.0.2.53']);
  t.false(net.internal);
  t.deepEqual(net.containers.map((c) => [c.names[0], c.ipv4, c.ipv6, c.dns]), [
    ['web', ['10.89.3.2'], ['fd10:88:a::2'], ['9.9.9.9', '2620:fe::fe']],
    ['db', ['10.89.3.3'], ['fd10:88:a::3'], []],
    ['v4only', ['10.89.3.4'], [], []],
  ]);
});

test('an internal network is NAME%int and its DNS columns are ignored', (t) => {
  const net = parseNetworkFile('secret%int', '10.89.9.1 192.0.2.53\nf031bf33eecba75d0d84952337b1ceef6a239eb8e94b48aee0993d0791345325 10.89.9.2  app 9.9.9.9\n');
  t.is(net.name, 'secret');
  t.true(net.internal);
  t.deepEqual(net.dns, []);
  t.deepEqual(net.containers[0]!.dns, []);
});

test('a bad line names the file and the line', (t) => {
  t.throws(() => parseNetworkFile('n', '10.0.0.1\nabc 10.0.0.2  x\n'), { message: /n line 2: "abc" is not a container id/ });
  t.throws(() => parseNetworkFile('n', '10.0.0.1\nf031bf33eecb 10.0.0.300  x\n'), { message: /n line 2: "10.0.0.300" is not an IPv4 address/ });
  t.throws(() => parseNetworkFile('n', '10.0.0.1\nf031bf33eecb 10.0.0.2\n'), { message: /n line 2: 2 fields/ });
  t.throws(() => parseNetworkFile('n', ''), { message: /n: empty/ });
  t.throws(() => parseNetworkFile('n', 'nope\n'), { message: /n line 1: "nope" is not an IPv4 or IPv6 address/ });
});

test('the directory: aardvark.pid skipped, a bad file left out and reported, the rest read', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsnet-aardvark-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'aardvark.pid'), '1234');
  writeFileSync(join(dir, 'mynet'), MYNET);
  writeFileSync(join(dir, 'broken'), 'not an address\n');
  const { networks, errors } = readConfigDir(dir);
  t.deepEqual(networks.map((n) => n.name), ['mynet']);
  t.is(errors.length, 1);
  t.regex(errors[0]!, /^broken line 1/);
});

test('a container on two networks is one endpoint with both attachments, its other names aliases, and the records validate', (t) => {
  const other = parseNetworkFile('other', '10.89.4.1\nf031bf33eecba75d0d84952337b1ceef6a239eb8e94b48aee0993d0791345325 10.89.4.2  web,f031bf33eecb,api\n');
  const doc = toRecords([parseNetworkFile('mynet', MYNET), other]);
  const state = parseRecords(doc);
  const web = state.endpoints.find((e) => e.name === 'web')!;
  t.deepEqual(Object.keys(web.networks).sort(), ['mynet', 'other']);
  t.deepEqual(web.networks.other!.aliases, ['f031bf33eecb', 'api']);
  t.is(web.networks.mynet!.ipv6, 'fd10:88:a::2');
  t.is(state.endpoints.length, 3);
});

test('a container with an address in each subnet of a network answers with all of them', (t) => {
  const net = parseNetworkFile('two', '10.89.5.1,10.89.6.1,fd10:5::1\n' + 'a'.repeat(64) + ' 10.89.5.2,10.89.6.2 fd10:5::2,fd10:6::2 db\n');
  const db = parseRecords(toRecords([net])).endpoints[0]!.networks.two!;
  t.deepEqual(db, { ipv4: '10.89.5.2', ipv6: 'fd10:5::2', secondary: ['10.89.6.2', 'fd10:6::2'] });
});
