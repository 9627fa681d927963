import test from 'ava';

import { assertBlocked, pings, startDaemon, type TestDaemon } from './helpers/daemon.js';
import { outsideWorld } from './helpers/outside.js';
import { startUpstream } from './helpers/upstream.js';

const ipOf = async (d: TestDaemon, sb: string, net: string): Promise<string> => JSON.parse(await d.tsnet('sandbox', 'inspect', sb))[0].Networks[net].IPv4Address as string;

test.serial('--opt icc=false: sandboxes on the network resolve but cannot reach each other; egress still works', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const out = await outsideWorld(t, d.tag);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), '--opt', 'icc=false', 'quiet');
  await d.tsnet('sandbox', 'create', '--name', 'a', '--network', 'quiet');
  await d.tsnet('sandbox', 'create', '--name', 'b', '--network', 'quiet');
  const b = await ipOf(d, 'b', 'quiet');
  t.is((await d.tsnet('exec', 'a', '--', 'dig', '+short', 'b')).trim(), b, 'names still resolve');
  t.true(await pings(d, 'b', out.outIp), 'control: b is up (its egress works)');
  // Egress from a is the control: allowed at the same moment the sibling is not.
  await assertBlocked(t, d, 'a', b, out.outIp, 'icc=false blocks sandbox-to-sandbox');
  const rules = JSON.parse(await d.tsnet('network', 'inspect', 'quiet'))[0].Rules as string[];
  t.true(rules.some((r) => r.startsWith('bridge ') && r.includes('drop')), rules.join('\n'));
});

test.serial('isolation matrix: same network yes, other network no, a sandbox on both reaches both, internal has no egress', async (t) => {
  const up = await startUpstream(t, { behaviour: 'nxdomain' });
  const d = await startDaemon(t, up.label);
  const out = await outsideWorld(t, d.tag);
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'red');
  await d.tsnet('network', 'create', '--subnet', d.subnet(), 'blue');
  await d.tsnet('network', 'create', '--subnet', d.subnet(), '--internal', 'vault');
  await d.tsnet('sandbox', 'create', '--name', 'r1', '--network', 'red');
  await d.tsnet('sandbox', 'create', '--name', 'r2', '--network', 'red');
  await d.tsnet('sandbox', 'create', '--name', 'b1', '--network', 'blue');
  await d.tsnet('sandbox', 'create', '--name', 'both', '--network', 'red', '--network', 'blue');
  await d.tsnet('sandbox', 'create', '--name', 'v1', '--network', 'vault');
  await d.tsnet('sandbox', 'create', '--name', 'v2', '--network', 'vault');
  const v1 = await ipOf(d, 'v1', 'vault');
  const matrix: [string, string, boolean][] = [
    ['r1', await ipOf(d, 'r2', 'red'), true],
    ['r1', await ipOf(d, 'b1', 'blue'), false],
    ['b1', await ipOf(d, 'r1', 'red'), false],
    ['both', await ipOf(d, 'r1', 'red'), true],
    ['both', await ipOf(d, 'b1', 'blue'), true],
    ['r1', out.outIp, true],
    ['b1', out.outIp, true],
    ['v1', await ipOf(d, 'v2', 'vault'), true],
    ['v2', v1, true],
    ['v1', out.outIp, false],
    ['r1', v1, false],
  ];
  // Every "no" has its controls in the matrix: its source reaches something and its target is reached.
  for (const [from, to] of matrix.filter(([, , a]) => !a)) {
    t.true(matrix.some(([f, , a]) => a && f === from) && matrix.some(([, x, a]) => a && x === to), `${from} -> ${to} has no control`);
  }
  for (const [from, to, allowed] of matrix) t.is(await pings(d, from, to), allowed, `${from} -> ${to}`);
  t.regex((await d.tsnet('network', 'inspect', 'red')), /masquerade/);
});
