import test from 'ava';
import fc from 'fast-check';
import { addressKey } from './address.js';
import { Registry } from './registry.js';
import type { EndpointSpec } from './types.js';

// The lookup tables are shared across networks and updated one endpoint at a time; this checks
// them after every change against the plainest reading of the state: scan every endpoint.

// A network name with a dot and one with capitals: `name.network` must still find them.
const NETS = ['n0', 'n1', 'n2', 'x.N3'];
// 'db.n2' is an alias with a dot that reads as db on n2 too: both holders answer it.
const NAMES = ['web', 'db', 'Api', 'cache', 'db.n2'];

const endpointArb = fc.record({
  slot: fc.integer({ min: 0, max: 5 }),
  name: fc.constantFrom(...NAMES),
  aliases: fc.subarray(NAMES),
  attach: fc.subarray(NETS, { minLength: 1 }),
  host: fc.integer({ min: 2, max: 4 }),
});
const opArb = fc.oneof(
  endpointArb.map((e) => ({ kind: 'set' as const, ...e })),
  fc.record({ kind: fc.constant('remove' as const), slot: fc.integer({ min: 0, max: 5 }) }),
  fc.record({ kind: fc.constant('dns' as const), net: fc.constantFrom(...NETS), on: fc.boolean() }),
);

const ipOf = (net: string, host: number): string => `10.0.${NETS.indexOf(net)}.${host}`;

function expectedLookup(r: Registry, networks: readonly string[], key: string): string[] | undefined {
  let found = false;
  const ips = new Set<string>();
  for (const ep of r.state().endpoints) {
    for (const net of networks) {
      const att = ep.networks[net];
      if (att === undefined || r.network(net)?.dns === false) continue;
      const bare = [ep.name, ...(att.aliases ?? []), ep.id.slice(0, 12)].map((n) => n.toLowerCase());
      if (!bare.includes(key) && !bare.map((n) => `${n}.${net}`.toLowerCase()).includes(key)) continue;
      found = true;
      if (att.ipv4 !== undefined) ips.add(att.ipv4);
    }
  }
  return found ? [...ips].sort() : undefined;
}

function expectedReverse(r: Registry, networks: readonly string[], ip: string): string[] | undefined {
  for (const net of [...networks].sort()) {
    if (r.network(net)?.dns === false) continue;
    const targets = r.state().endpoints.filter((ep) => ep.networks[net]?.ipv4 === ip).map((ep) => `${ep.name}.${net}`.toLowerCase());
    if (targets.length > 0) return [...new Set(targets)].sort();
  }
  return undefined;
}

test('lookup and reverse through the shared tables agree with a scan of every endpoint, in every scope, after every change', (t) => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 40 }), fc.subarray(NETS), (ops, scopeNets) => {
      const r = new Registry();
      for (const name of NETS) r.setNetwork({ name, subnet: `10.0.${NETS.indexOf(name)}.0/24` });
      const scopes = [r.allScope, r.scope(scopeNets), r.scope(['n1'])];
      for (const op of ops) {
        if (op.kind === 'set') {
          const ep: EndpointSpec = {
            id: `${op.slot}`.repeat(12).padEnd(64, 'a'),
            name: op.name,
            networks: Object.fromEntries(op.attach.map((n) => [n, { ipv4: ipOf(n, op.host), aliases: op.aliases }])),
          };
          r.setEndpoint(ep);
        } else if (op.kind === 'remove') {
          const id = `${op.slot}`.repeat(12).padEnd(64, 'a');
          if (r.endpoint(id) !== undefined) r.removeEndpoint(id);
        } else {
          r.setNetwork({ ...r.network(op.net)!, dns: op.on });
        }
        for (const scope of [r.allScope, ...scopes.slice(1).map((s) => r.scope(s.networks))]) {
          for (const key of NAMES.flatMap((n) => [n.toLowerCase(), ...NETS.map((net) => `${n}.${net}`.toLowerCase())])) {
            const got = r.lookup(scope, 'endpoints', key);
            const want = expectedLookup(r, scope.networks, key);
            if (want === undefined ? got !== undefined : got === undefined || JSON.stringify(got.v4.map((a) => a.ip).sort()) !== JSON.stringify(want)) {
              throw new Error(`lookup ${key} in [${scope.networks.join()}]: ${JSON.stringify(got?.v4)} != ${JSON.stringify(want)}`);
            }
          }
          for (const net of NETS) {
            for (let host = 2; host <= 4; host++) {
              const got = r.reverse(scope, addressKey(ipOf(net, host))!);
              const want = expectedReverse(r, scope.networks, ipOf(net, host));
              if (JSON.stringify(got === undefined ? undefined : [...got].sort()) !== JSON.stringify(want)) {
                throw new Error(`reverse ${ipOf(net, host)} in [${scope.networks.join()}]: ${JSON.stringify(got)} != ${JSON.stringify(want)}`);
              }
            }
          }
        }
      }
    }),
    { numRuns: 300 },
  );
  t.pass();
});
