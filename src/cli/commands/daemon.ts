import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { pino } from 'pino';
import { serveControl } from '../../control/server.js';
import { ipvsVipBackend, type VipBackend } from '../../net/lb/backend.js';
import { IpvsClient } from '../../net/lb/ipvs-socket.js';
import { holdLock } from '../../daemon/lock.js';
import { Manager } from '../../daemon/manager.js';
import { ownerMark } from '../../daemon/state.js';
import { openFileStores, SavedState } from '../../daemon/saved-state.js';
import { RegistryFeed } from '../../reconcile/registry-feed.js';
import { Registry } from '../../registry/registry.js';
import { serveMetrics } from '../../server/metrics-http.js';
import { createServer } from '../../server/server.js';
import { parseHostPort, parseUpstream, resolvConfUpstreams, type Upstream } from '../../server/upstreams.js';

const hostSearch = (): string[] => {
  try {
    return readFileSync('/etc/resolv.conf', 'utf8').split('\n').flatMap((l) => /^\s*(?:search|domain)\s+(.*)$/.exec(l)?.[1]?.trim().split(/\s+/) ?? []);
  } catch {
    return [];
  }
};

/**
 * One daemon per socket and per state directory: both are locked before anything is read or
 * touched, so a second daemon exits without removing the first one's socket or state.
 */
function claim(socket: string, stateDir: string): void {
  // 0700 from the start: no moment when another user could reach the socket's directory.
  mkdirSync(dirname(socket), { recursive: true, mode: 0o700 });
  holdLock(`${socket}.lock`, `the control socket ${socket}`);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  holdLock(join(stateDir, 'lock'), `the state directory ${stateDir}`);
}

/** `--metrics`: ADDR:PORT binds where asked; a bare PORT or :PORT binds loopback, never every address. */
export function metricsAddress(text: string): { address: string; port: number } {
  const bare = /^:?(\d+)$/.exec(text);
  return parseHostPort(bare === null ? text : `127.0.0.1:${bare[1]}`, 9153, 'metrics');
}

export function daemonCommand(program: Command): void {
  program
    .command('daemon')
    .description('run the daemon: the control API, the networks and a resolver at 127.0.0.11:53 in every sandbox')
    .option('--state-dir <dir>', 'where networks and sandboxes are kept', '/var/lib/tsnet')
    .option('--upstream <ip[:port]>', 'servers for names tsnet does not own (default: /etc/resolv.conf); repeatable', (v: string, p: Upstream[] = []) => [...p, parseUpstream(v)])
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .option('--metrics <[addr:]port>', 'serve Prometheus metrics at http://ADDR:PORT/metrics (ADDR defaults to 127.0.0.1)')
    .option('--bridge <name>', 'device of the default bridge network', 'tsnet0')
    .option('--bip <cidr>', 'subnet of the default bridge network', '172.17.0.0/16')
    .option('--nft-table <name>', 'the nftables table (inet) tsnet owns', 'tsnet')
    .option('--netns-prefix <prefix>', 'sandbox namespaces are /run/netns/PREFIX<name>', 'tsnet-')
    .option('--lb <backend>', 'VIP dataplane: nft, or ipvs where the kernel has it', 'nft')
    .action(async (opts: { stateDir: string; upstream?: Upstream[]; logLevel: string; metrics?: string; bridge: string; bip: string; nftTable: string; netnsPrefix: string; lb: string }) => {
      const socket = program.opts<{ socket: string }>().socket;
      const metricsAt = opts.metrics === undefined ? undefined : metricsAddress(opts.metrics);
      claim(socket, opts.stateDir);
      const logger = pino({ level: opts.logLevel, base: { name: 'tsnet' } });
      if (opts.lb !== 'nft' && opts.lb !== 'ipvs') throw new Error(`--lb ${opts.lb}: expected nft or ipvs`);
      let vipBackend: VipBackend | undefined;
      if (opts.lb === 'ipvs') {
        // IPVS is only taken where the kernel has it; the nftables backend carries on otherwise.
        try {
          IpvsClient.open().close();
          vipBackend = ipvsVipBackend();
          logger.info('VIPs are programmed in IPVS');
        } catch (err) {
          logger.error({ err: (err as Error).message }, '--lb ipvs unavailable; using the nftables backend');
        }
      }
      const registry = new Registry();
      const dns = createServer({ registry, upstreams: opts.upstream ?? resolvConfUpstreams(), logger: logger.child({ part: 'dns' }) });
      const stores = await openFileStores(opts.stateDir);
      const { saved, state } = await SavedState.load(stores, { stateDir: opts.stateDir, netnsPrefix: opts.netnsPrefix });
      const feed = new RegistryFeed(stores.cluster, registry, logger.child({ part: 'registry-feed' }));
      await feed.start();
      const manager = new Manager({
        saved,
        state,
        stateDir: opts.stateDir,
        feed,
        dns,
        logger,
        hostSearch: hostSearch(),
        defaultBridge: { device: opts.bridge, subnet: opts.bip },
        nftTable: opts.nftTable,
        netnsPrefix: opts.netnsPrefix,
        ...(vipBackend === undefined ? {} : { vipBackend }),
        owner: ownerMark(opts.stateDir),
      });
      await manager.restore();
      // The socket is bound inside serveControl's synchronous part: created 0600, never chmod-ed later.
      const umask = process.umask(0o177);
      const listening = serveControl(manager, socket, logger);
      process.umask(umask);
      const control = await listening;
      const metrics = metricsAt === undefined ? undefined : await serveMetrics(dns.metrics, metricsAt.address, metricsAt.port);
      logger.info({ socket, stateDir: opts.stateDir, node: stores.node, store: stores.cluster.kind, networks: manager.state.networks.length, sandboxes: manager.state.sandboxes.length }, 'ready');
      const stop = (signal: string): void => {
        logger.info({ signal }, 'shutting down; networks and sandboxes stay');
        control.close();
        metrics?.close();
        feed.stop();
        void Promise.all([dns.close(), stores.cluster.close(), stores.local.close()]).then(() => process.exit(0));
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
}
