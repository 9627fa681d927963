import test from 'ava';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { renderVipTable } from '../src/net/lb/nft-vip.js';
import { renderRuleset, type BridgeRules, type PublishRule } from '../src/net/nft/ruleset.js';
import { systemTool } from '../src/net/tools.js';

const run = promisify(execFile);

/**
 * The rendered rulesets for the common scenarios, against golden files in test/fixtures/nft/.
 * `UPDATE_GOLDEN=1 node test/run.mjs test/343-nft-golden.test.ts` rewrites them; review the diff.
 */
const golden = (name: string): string => new URL(`./fixtures/nft/${name}.nft`, import.meta.url).pathname;

const app: BridgeRules = { network: 'app', bridge: 'tsbr-0123456789', subnet: '172.30.0.0/24', internal: false, icc: true, ports: ['tsv0000000001', 'tsv0000000002'] };
const web: PublishRule = { hostIp: '0.0.0.0', hostPort: 8080, protocol: 'tcp', targets: [{ ip: '172.30.0.2', port: 80 }], bridge: app.bridge, owner: 'web' };

const scenarios: Record<string, string> = {
  bridge: renderRuleset('tsnet', [app]),
  'icc-false': renderRuleset('tsnet', [{ ...app, network: 'quiet', icc: false }]),
  internal: renderRuleset('tsnet', [app, { network: 'vault', bridge: 'tsbr-9876543210', subnet: '10.9.0.0/16', internal: true, icc: true, ports: [] }]),
  'published-ports': renderRuleset('tsnet', [app], [
    web,
    { ...web, hostIp: '127.0.0.1', hostPort: 5353, protocol: 'udp', targets: [{ ip: '172.30.0.2', port: 53 }] },
    { ...web, hostPort: 9090, targets: [{ ip: '172.30.0.11', port: 80 }, { ip: '172.30.0.12', port: 80 }, { ip: '172.30.0.12', port: 80 }], owner: 'api' },
    { ...web, hostPort: 9191, targets: [], owner: 'idle' },
  ]),
  vip: renderVipTable('tsnet_lb', [
    { name: 'api', vip: '172.30.0.100', ports: [{ protocol: 'tcp', port: 80 }], backends: [{ ip: '172.30.0.11', weight: 2 }, { ip: '172.30.0.12', weight: 1 }, { ip: '172.30.0.13', weight: 0 }] },
    { name: 'db', vip: '172.30.0.101', ports: [], backends: [] },
  ]),
};

for (const [name, text] of Object.entries(scenarios)) {
  test(`the ${name} ruleset renders as its golden file, which nft accepts`, async (t) => {
    if (process.env.UPDATE_GOLDEN === '1') writeFileSync(golden(name), text);
    t.is(text, readFileSync(golden(name), 'utf8'));
    // -c: parsed and checked by the kernel, never committed.
    await t.notThrowsAsync(run(systemTool('nft'), ['-c', '-f', golden(name)]));
  });
}

test('a value that could break out of its place in a rule is refused, not rendered', (t) => {
  const bad: [Partial<BridgeRules>, RegExp][] = [
    [{ bridge: 'ts*' }, /interface name "ts\*"/],
    [{ bridge: 'x"y' }, /interface name/],
    [{ bridge: 'a accept' }, /interface name/],
    [{ subnet: '10.0.0.0/24 accept' }, /subnet/],
    [{ subnet: '10.0.0.1/24' }, /subnet/],
    [{ network: 'a" accept comment "b' }, /comment/],
    [{ ports: ['tsv1', 'x } accept'] }, /interface name/],
  ];
  for (const [change, message] of bad) t.throws(() => renderRuleset('tsnet', [{ ...app, icc: false, ...change }]), { message }, JSON.stringify(change));
  t.throws(() => renderRuleset('ts net', [app]), { message: /table name/ });
  t.throws(() => renderRuleset('tsnet', [app], [{ ...web, hostIp: '1.2.3.4 accept' }]), { message: /IPv4 address/ });
  t.throws(() => renderRuleset('tsnet', [app], [{ ...web, owner: 'x\ny' }]), { message: /comment/ });
  t.throws(() => renderRuleset('tsnet', [app], [{ ...web, hostPort: 0 }]), { message: /port/ });
  t.throws(() => renderVipTable('t', [{ name: 'a', vip: '10.0.0.1; drop', ports: [], backends: [] }]), { message: /IPv4 address/ });
});
