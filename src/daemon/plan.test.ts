import test from 'ava';
import { planSandbox, usedAddresses } from './plan.js';
import { emptyState, type DaemonState, type NetworkRecord } from './state.js';

const network = (name: string, scope: 'local' | 'swarm'): NetworkRecord => ({
  id: `${name}`.padEnd(64, '0'),
  name,
  driver: scope === 'swarm' ? 'overlay' : 'bridge',
  scope,
  created: '2026-12-03T00:00:00.000Z',
  internal: false,
  dns: true,
  ipam: { subnet: '10.9.0.0/24', gateway: '10.9.0.1' },
  mtu: 1450,
  labels: {},
  options: {},
});

const stateWith = (...networks: NetworkRecord[]): DaemonState => ({ ...emptyState(), networks });

test('a sandbox planned on a swarm network skips the addresses other nodes hold, as the caller knows them', (t) => {
  const ov = network('ov', 'swarm');
  const elsewhere = (net: NetworkRecord): string[] => (net.id === ov.id ? ['10.9.0.2', '10.9.0.3', '10.9.0.5'] : []);
  t.is(planSandbox(stateWith(ov), { name: 'a', networks: [{ network: 'ov' }] }, 'x-', elsewhere).attachments.ov?.ipv4, '10.9.0.4');
  t.is(planSandbox(stateWith(ov), { name: 'a', networks: [{ network: 'ov' }] }, 'x-').attachments.ov?.ipv4, '10.9.0.2', 'without them, the lowest the state leaves');
});

test('the addresses used on a network are its sandboxes’, its services’ VIPs and tasks’, and those taken elsewhere', (t) => {
  const ov = network('ov', 'swarm');
  const state = stateWith(ov);
  state.sandboxes.push(planSandbox(state, { name: 'a', networks: [{ network: 'ov' }] }, 'x-'));
  state.services = [{ name: 's', network: 'ov', vip: '10.9.0.9', tasks: [{ ipv4: '10.9.0.7' }] } as unknown as NonNullable<DaemonState['services']>[number]];
  t.deepEqual([...usedAddresses(state, ov, () => ['10.9.0.20'])].sort(), ['10.9.0.2', '10.9.0.20', '10.9.0.7', '10.9.0.9']);
});
