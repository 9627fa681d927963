import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderGuard } from './guard.js';
import { generatePrivateKey, isWgKey, loadOrCreateKey, publicKeyOf, writeKeyFile } from './keys.js';
import { checkEndpoint, parseDump } from './wg.js';

test('a key made by Node has the public key `wg pubkey` gives it', (t) => {
  for (let i = 0; i < 5; i++) {
    const key = generatePrivateKey();
    t.true(isWgKey(key));
    t.is(publicKeyOf(key), execFileSync('wg', ['pubkey'], { input: `${key}\n` }).toString().trim());
  }
});

test('only base64 of 32 bytes is a key: nothing else reaches wg', (t) => {
  t.false(isWgKey(''));
  t.false(isWgKey('a'.repeat(44)));
  t.false(isWgKey(`${'A'.repeat(42)}B=`), 'the last character carries 4 bits: B is not one of its 16');
  t.false(isWgKey(`${'A'.repeat(43)}= --peer`));
  t.true(isWgKey(`${'A'.repeat(43)}=`));
  t.throws(() => publicKeyOf('nope'), { message: /not a base64 32-byte key/ });
});

test('the key file is made 0600 once and kept; a rotation replaces it whole', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsnet-wgkey-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'wg.key');
  const key = loadOrCreateKey(file);
  t.is(statSync(file).mode & 0o777, 0o600);
  t.is(loadOrCreateKey(file), key, 'read back, not made again');
  const next = generatePrivateKey();
  writeKeyFile(file, next);
  t.is(readFileSync(file, 'utf8').trim(), next);
  t.is(statSync(file).mode & 0o777, 0o600);
});

test('endpoints are ADDR:PORT with an IP address (IPv6 in brackets) and nothing else', (t) => {
  for (const ok of ['10.0.0.1:51820', '[fd00::1]:51820']) t.notThrows(() => checkEndpoint(ok));
  for (const bad of ['10.0.0.1', 'host:51820', '10.0.0.1:0', '10.0.0.1:70000', 'fd00::1:51820', '[10.0.0.1]:1', '10.0.0.1:1 peer']) {
    t.throws(() => checkEndpoint(bad), { message: /is not ADDR:PORT/ }, bad);
  }
});

test('wg show dump: the private key on the first line is dropped; peers are read with their state', (t) => {
  const priv = generatePrivateKey();
  const pub = publicKeyOf(priv);
  const peer = publicKeyOf(generatePrivateKey());
  const dump = `${priv}\t${pub}\t51820\toff\n${peer}\t(none)\t10.1.0.2:51820\t100.64.0.2/32\t1796285000\t1200\t3400\t25\n`;
  const s = parseDump(dump);
  t.deepEqual(s, { publicKey: pub, listenPort: 51820, peers: [{ publicKey: peer, endpoint: '10.1.0.2:51820', allowedIp: '100.64.0.2', latestHandshake: 1796285000, rxBytes: 1200, txBytes: 3400 }] });
  t.false(JSON.stringify(s).includes(priv));
  t.throws(() => parseDump(''), { message: /no device line/ });
});

test('the guard drops VXLAN of the encrypted VNIs that does not come out of (or go into) the WireGuard interface', (t) => {
  t.is(
    renderGuard({ table: 'tsnet_ovenc', wgIfname: 'tsnet-wg0', vxlanPort: 4789, vnis: [4097, 4100] }),
    [
      'table inet tsnet_ovenc {}',
      'delete table inet tsnet_ovenc',
      'table inet tsnet_ovenc {',
      '  set encrypted_vnis { typeof @th,96,24; elements = { 4097, 4100 }; }',
      '  chain enc_in { type filter hook input priority raw; policy accept;',
      '    iifname != "tsnet-wg0" udp dport 4789 @th,96,24 @encrypted_vnis counter drop',
      '  }',
      '  chain enc_out { type filter hook output priority raw; policy accept;',
      '    oifname != "tsnet-wg0" udp dport 4789 @th,96,24 @encrypted_vnis counter drop',
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  t.throws(() => renderGuard({ table: 'x', wgIfname: 'a"b', vxlanPort: 4789, vnis: [1] }), { message: /interface name/ });
  t.throws(() => renderGuard({ table: 'x', wgIfname: 'wg0', vxlanPort: 4789, vnis: [2 ** 24] }), { message: /24-bit VNI/ });
});
