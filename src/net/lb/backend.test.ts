import test from 'ava';
import { syncIpvs, type IpvsLike } from './backend.js';
import type { IpvsDestination, IpvsService } from './ipvs.js';

/** A recording fake of the kernel's IPVS table: what syncIpvs asked for, and the resulting state. */
function fakeIpvs(): IpvsLike & { calls: string[]; table: Map<string, { s: IpvsService; d: Map<string, IpvsDestination> }> } {
  const table = new Map<string, { s: IpvsService; d: Map<string, IpvsDestination> }>();
  const k = (s: IpvsService) => `${s.protocol}/${s.address}:${s.port}`;
  const calls: string[] = [];
  return {
    calls,
    table,
    services: () => [...table.values()].map((x) => x.s),
    destinations: (s) => [...(table.get(k(s))?.d.values() ?? [])],
    newService: (s) => (calls.push(`new ${k(s)} ${s.scheduler}`), void table.set(k(s), { s, d: new Map() })),
    delService: (s) => (calls.push(`del ${k(s)}`), void table.delete(k(s))),
    setDestination: (s, d, exists) => (calls.push(`${exists ? 'set' : 'add'} ${k(s)} ${d.address} w${d.weight}`), void table.get(k(s))!.d.set(`${d.address}:${d.port}`, d)),
    delDestination: (s, d) => (calls.push(`rm ${k(s)} ${d.address}`), void table.get(k(s))!.d.delete(`${d.address}:${d.port}`)),
    close: () => {},
  };
}

const api = (backends: { ip: string; weight: number }[]) => [{ name: 'api', vip: '10.0.0.100', ports: [{ protocol: 'tcp' as const, port: 80 }], backends }];

test('syncIpvs adds the service and its destinations with weighted round robin, then does nothing when nothing changed', (t) => {
  const ipvs = fakeIpvs();
  syncIpvs(ipvs, api([{ ip: '10.0.0.11', weight: 1 }, { ip: '10.0.0.12', weight: 2 }]));
  t.deepEqual(ipvs.calls, ['new tcp/10.0.0.100:80 wrr', 'add tcp/10.0.0.100:80 10.0.0.11 w1', 'add tcp/10.0.0.100:80 10.0.0.12 w2']);
  ipvs.calls.length = 0;
  syncIpvs(ipvs, api([{ ip: '10.0.0.11', weight: 1 }, { ip: '10.0.0.12', weight: 2 }]));
  t.deepEqual(ipvs.calls, []);
});

test('a draining task is set to weight 0, a removed one deleted, a removed service deleted', (t) => {
  const ipvs = fakeIpvs();
  syncIpvs(ipvs, api([{ ip: '10.0.0.11', weight: 1 }, { ip: '10.0.0.12', weight: 1 }]));
  ipvs.calls.length = 0;
  syncIpvs(ipvs, api([{ ip: '10.0.0.11', weight: 0 }]));
  t.deepEqual(ipvs.calls, ['set tcp/10.0.0.100:80 10.0.0.11 w0', 'rm tcp/10.0.0.100:80 10.0.0.12']);
  ipvs.calls.length = 0;
  syncIpvs(ipvs, []);
  t.deepEqual(ipvs.calls, ['del tcp/10.0.0.100:80']);
  t.is(ipvs.table.size, 0);
});
