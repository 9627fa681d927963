import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { podman } from '../../resolvers/podman/index.js';
import { Registry } from '../registry/registry.js';
import { parseRecords } from '../registry/validate.js';
import { createServer, type Listener } from '../server/server.js';
import { parseUpstream, type Upstream } from '../server/upstreams.js';
import { askerServers, PID_FILE, readConfigDir, toRecords, type AardvarkNetwork } from './config.js';

export interface AardvarkOptions {
  /** netavark's `<config>/aardvark-dns` directory. */
  dir: string;
  port: number;
  /** Podman's search domain, `dns.podman` unless `-f` says otherwise. */
  domain: string;
  logger: Logger;
  /** `AARDVARK_NO_PROXY`: nothing is forwarded. */
  noProxy: boolean;
  /** Called once every listener of the first load is bound (the launcher's readiness). */
  ready(): void;
}

/** Where each network's resolver listens: its gateway addresses, on the one port. */
const bindings = (nets: readonly AardvarkNetwork[]): Map<string, { network: AardvarkNetwork; ip: string }> =>
  new Map(nets.flatMap((network) => network.bindIps.map((ip) => [`${network.name} ${ip}`, { network, ip }] as const)));

/**
 * tsnet-dns as netavark's aardvark-dns: the config directory's networks in a registry (a
 * container asking sees the names of every network it is on, anyone else those of the network
 * it asked on), a listener on each gateway address, and SIGHUP to read the directory again. A
 * reload swaps the names at once and opens and closes only the listeners that changed; a file
 * that does not parse is left out and the rest serve. With no network left the pid file goes and
 * the process ends, as aardvark does. Resolves when it has ended.
 */
export async function serveAardvark(o: AardvarkOptions): Promise<void> {
  const registry = new Registry();
  let internal = new Set<string>();
  let askers = new Map<string, Upstream[]>();
  const server = createServer({
    registry,
    ttl: 0,
    resolvers: ['local', 'services', 'ptr', podman({ domain: o.domain, internal: () => internal, noProxy: o.noProxy }), 'cache', 'forward'],
    logger: o.logger,
  });
  const listening = new Map<string, { listener: Listener; dns: string }>();
  let done: () => void = () => {};
  const ended = new Promise<void>((r) => (done = r));

  const load = async (first: boolean): Promise<boolean> => {
    const { networks, errors } = readConfigDir(o.dir);
    for (const e of errors) o.logger.error({ err: e }, 'network file left out');
    if (networks.length === 0) return false;
    registry.replace(parseRecords(toRecords(networks)));
    internal = new Set(networks.filter((n) => n.internal).map((n) => n.name));
    askers = new Map([...askerServers(networks)].map(([address, servers]) => [address, servers.map(parseUpstream)]));
    const want = bindings(networks);
    for (const [key, held] of listening) {
      const w = want.get(key);
      if (w !== undefined && w.network.dns.join(',') === held.dns) continue;
      listening.delete(key);
      await held.listener.close();
    }
    for (const [key, { network, ip }] of want) {
      if (listening.has(key)) continue;
      try {
        const upstreams = network.dns.length > 0 ? network.dns.map(parseUpstream) : undefined;
        const listener = await server.listen({
          address: ip,
          port: o.port,
          scope: [network.name],
          upstreamsFor: (asker) => askers.get(asker),
          ...(upstreams === undefined ? {} : { upstreams }),
        });
        listening.set(key, { listener, dns: network.dns.join(',') });
      } catch (err) {
        // At start nothing is served half: a gateway that cannot be bound fails the launch.
        if (first) throw new Error(`binding ${ip}:${o.port} for network ${network.name}: ${(err as Error).message}`);
        o.logger.error({ network: network.name, ip, err: (err as Error).message }, 'could not listen; the other networks serve');
      }
    }
    return true;
  };

  const stop = async (): Promise<void> => {
    rmSync(join(o.dir, PID_FILE), { force: true });
    await server.close();
    done();
  };

  if (!(await load(true))) {
    await server.close();
    throw new Error(`no network with a bind address in ${o.dir}`);
  }
  // No newline: netavark parses the file's whole text as the pid.
  writeFileSync(join(o.dir, PID_FILE), String(process.pid));
  o.ready();
  let reloading = Promise.resolve();
  process.on('SIGHUP', () => {
    reloading = reloading.then(async () => {
      if (!(await load(false))) await stop();
    }).catch((err: Error) => o.logger.error({ err: err.message }, 'reload failed; serving what was loaded before'));
  });
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
  await ended;
}
