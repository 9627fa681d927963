// The API changes a crash run makes, what each does to a model of the state when acknowledged,
// and the daemon's saved state seen through the same model (shared by `npm run bench:crash`
// and test/410-crash-safety.test.ts).

/** What a run's clients know about the state: user-made objects (replica sandboxes are counted, not listed). */
export interface Model {
  networks: string[];
  sandboxes: Record<string, { networks: string[]; ports: number[] }>;
  services: Record<string, { network: string; replicas: number | null; publish: number[] }>;
}

export interface Op {
  what: string;
  method: 'POST' | 'DELETE';
  path: string;
  body?: unknown;
  /** The model once the change is applied whole. */
  apply(m: Model): Model;
}

export const emptyModel = (): Model => ({ networks: [], sandboxes: {}, services: {} });

/** A seeded generator (mulberry32), so that a failing run can be replayed from its seed. */
export function prng(seed: number): { next(): number; int(lo: number, hi: number): number; pick<T>(xs: readonly T[]): T } {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1));
  return { next, int, pick: (xs) => xs[int(0, xs.length - 1)]! };
}

const without = <T>(rec: Record<string, T>, key: string): Record<string, T> => Object.fromEntries(Object.entries(rec).filter(([k]) => k !== key));

/**
 * The next change for model `m`, valid for it (a refusal is still possible: a host port another
 * program holds). `fresh` gives unique suffixes, subnets and host ports; `command` is what replicas run.
 */
export function nextOp(m: Model, r: ReturnType<typeof prng>, fresh: { n(): number; subnet(): string; port(): number }, command: string): Op {
  const used = (net: string): boolean => Object.values(m.sandboxes).some((s) => s.networks.includes(net)) || Object.values(m.services).some((s) => s.network === net);
  const choices: (() => Op | undefined)[] = [
    () => {
      const name = `n${fresh.n()}`;
      const subnet = fresh.subnet();
      return { what: `network create ${name}`, method: 'POST', path: '/networks/create', body: { Name: name, IPAM: { Config: [{ Subnet: subnet }] } }, apply: (x) => ({ ...x, networks: [...x.networks, name] }) };
    },
    () => {
      const free = m.networks.filter((n) => !used(n));
      if (free.length === 0) return undefined;
      const name = r.pick(free);
      return { what: `network rm ${name}`, method: 'DELETE', path: `/networks/${name}`, apply: (x) => ({ ...x, networks: x.networks.filter((n) => n !== name) }) };
    },
    () => {
      const name = `s${fresh.n()}`;
      const nets = [...new Set([r.pick(['bridge', ...m.networks]), ...(r.next() < 0.3 ? [r.pick(['bridge', ...m.networks])] : [])])];
      const ports = r.next() < 0.5 ? [fresh.port()] : [];
      const body = { name, networks: nets.map((network) => ({ network })), publish: ports.map((p) => `${p}:80`) };
      return { what: `sandbox create ${name}`, method: 'POST', path: '/sandboxes/create', body, apply: (x) => ({ ...x, sandboxes: { ...x.sandboxes, [name]: { networks: [...nets].sort(), ports } } }) };
    },
    () => {
      const names = Object.keys(m.sandboxes);
      if (names.length === 0) return undefined;
      const name = r.pick(names);
      return { what: `sandbox rm ${name}`, method: 'DELETE', path: `/sandboxes/${name}`, apply: (x) => ({ ...x, sandboxes: without(x.sandboxes, name) }) };
    },
    () => {
      if (m.networks.length === 0) return undefined;
      const name = `v${fresh.n()}`;
      const network = r.pick(m.networks);
      const replicas = r.next() < 0.7 ? r.int(1, 2) : null;
      const publish = r.next() < 0.3 ? [fresh.port()] : [];
      const body = { Name: name, Network: network, Ports: ['http:tcp:80'], Publish: publish.map((p) => `${p}:80`), ...(replicas === null ? {} : { Replicas: { Count: replicas, Command: command } }) };
      return { what: `service create ${name}`, method: 'POST', path: '/services/create', body, apply: (x) => ({ ...x, services: { ...x.services, [name]: { network, replicas, publish } } }) };
    },
    () => {
      const names = Object.keys(m.services).filter((s) => m.services[s]!.replicas !== null);
      if (names.length === 0) return undefined;
      const name = r.pick(names);
      const count = r.int(0, 3);
      return { what: `service scale ${name} ${count}`, method: 'POST', path: `/services/${name}/scale`, body: { Replicas: count }, apply: (x) => ({ ...x, services: { ...x.services, [name]: { ...x.services[name]!, replicas: count } } }) };
    },
    () => {
      const names = Object.keys(m.services);
      if (names.length === 0) return undefined;
      const name = r.pick(names);
      return { what: `service rm ${name}`, method: 'DELETE', path: `/services/${name}`, apply: (x) => ({ ...x, services: without(x.services, name) }) };
    },
  ];
  for (;;) {
    const op = r.pick(choices)();
    if (op !== undefined) return op;
  }
}

/** What the crash checks read of the daemon's saved state. */
export interface SavedState {
  networks: { name: string; device?: string; ipam: { subnet: string; gateway: string } | null; driver: string }[];
  sandboxes: { name: string; netns?: string; mode: string; replicaOf?: string; ports?: { hostPort: number }[]; attachments: Record<string, { ipv4?: string; ifname: string; hostIf: string }> }[];
  services?: { name: string; network: string; vip?: string; replicas?: { count: number }; publish?: { hostPort: number }[]; tasks: { sandbox?: string }[] }[];
}

export function modelOf(state: SavedState): Model {
  return {
    networks: state.networks.map((n) => n.name).filter((n) => n !== 'bridge'),
    sandboxes: Object.fromEntries(
      state.sandboxes.filter((s) => s.replicaOf === undefined).map((s) => [s.name, { networks: Object.keys(s.attachments).sort(), ports: (s.ports ?? []).map((p) => p.hostPort) }]),
    ),
    services: Object.fromEntries((state.services ?? []).map((s) => [s.name, { network: s.network, replicas: s.replicas?.count ?? null, publish: (s.publish ?? []).map((p) => p.hostPort) }])),
  };
}

/** A canonical text of a model, for comparing two. */
export const canonical = (m: Model): string =>
  JSON.stringify({
    networks: [...m.networks].sort(),
    sandboxes: Object.entries(m.sandboxes).sort(([a], [b]) => a.localeCompare(b)),
    services: Object.entries(m.services).sort(([a], [b]) => a.localeCompare(b)),
  });
