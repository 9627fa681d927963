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
import { openStores, SavedState } from '../../daemon/saved-state.js';
import { joinCluster } from '../../cluster/nodes.js';
import { NodeList } from '../../cluster/node-list.js';
import { ClusterView } from '../../reconcile/cluster-view.js';
import { OverlayPeers } from '../../reconcile/overlay-peers.js';
import { Tunnels } from '../../reconcile/tunnels.js';
import { checkIfname } from '../../net/link/names.js';
import { RegistryFeed } from '../../reconcile/registry-feed.js';
import { EtcdStore, parseStoreUrl } from '../../store/etcd-store.js';
import type { Store } from '../../store/store.js';
import { isIPv4, isIPv6 } from 'node:net';
import { NAME } from '../../registry/validate.js';
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

/** The cluster options, checked before anything is locked or made: a bad one exits with its name. */
function checkClusterOptions(opts: { store?: string; node?: string; advertiseAddr: string; leaseTtl: string }): { store?: Store; leaseTtl: number } {
  if (opts.node !== undefined && !NAME.test(opts.node)) throw new Error(`--node ${JSON.stringify(opts.node)}: letters, digits, '_', '.', '-', starting with a letter or digit`);
  if (!isIPv4(opts.advertiseAddr) && !isIPv6(opts.advertiseAddr)) throw new Error(`--advertise-addr ${JSON.stringify(opts.advertiseAddr)} is not an IP address`);
  const leaseTtl = /^\d{1,4}$/.test(opts.leaseTtl) ? Number(opts.leaseTtl) : NaN;
  if (!(leaseTtl >= 2 && leaseTtl <= 3600)) throw new Error(`--lease-ttl ${JSON.stringify(opts.leaseTtl)}: whole seconds from 2 to 3600`);
  if (opts.store === undefined) return { leaseTtl };
  return { store: new EtcdStore({ hosts: parseStoreUrl(opts.store) }), leaseTtl };
}

/** The WireGuard options, checked before anything is locked or made. */
function checkWireguardOptions(opts: { wgIfname: string; wgPort: string; wgKeyRotation: string }): { port: number; rotateEveryMs: number } {
  checkIfname(opts.wgIfname, '--wg-ifname');
  const port = /^\d{1,5}$/.test(opts.wgPort) ? Number(opts.wgPort) : NaN;
  if (!(port >= 1 && port <= 65535)) throw new Error(`--wg-port ${JSON.stringify(opts.wgPort)}: a UDP port from 1 to 65535`);
  const seconds = /^\d{1,7}$/.test(opts.wgKeyRotation) ? Number(opts.wgKeyRotation) : NaN;
  if (!(seconds === 0 || seconds >= 1)) throw new Error(`--wg-key-rotation ${JSON.stringify(opts.wgKeyRotation)}: whole seconds (0: never)`);
  return { port, rotateEveryMs: seconds * 1000 };
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
    .option('--store <url>', 'the cluster store: etcd://HOST:PORT[,HOST:PORT...] (default: the embedded file store in --state-dir)')
    .option('--node <name>', "this node's name in the cluster (default: the host name; kept in --state-dir)")
    .option('--advertise-addr <ip>', 'the address other nodes reach this one at', '127.0.0.1')
    .option('--lease-ttl <seconds>', "seconds a dead node's endpoints and tasks outlive it", '10')
    .option('--wg-ifname <name>', "encrypted overlays: this node's WireGuard interface (unique on the machine: wireguard-go's sockets share /var/run/wireguard)", 'tsnet-wg0')
    .option('--wg-port <port>', 'encrypted overlays: the UDP port WireGuard listens at, on the advertise address', '51820')
    .option('--wg-key-rotation <seconds>', "encrypted overlays: seconds between automatic rotations of this node's WireGuard key (0: never)", '43200')
    .action(async (opts: { stateDir: string; upstream?: Upstream[]; logLevel: string; metrics?: string; bridge: string; bip: string; nftTable: string; netnsPrefix: string; lb: string; store?: string; node?: string; advertiseAddr: string; leaseTtl: string; wgIfname: string; wgPort: string; wgKeyRotation: string }) => {
      const socket = program.opts<{ socket: string }>().socket;
      const metricsAt = opts.metrics === undefined ? undefined : metricsAddress(opts.metrics);
      const cluster = checkClusterOptions(opts);
      const wireguard = checkWireguardOptions(opts);
      claim(socket, opts.stateDir);
      const logger = pino({ level: opts.logLevel, base: { name: 'tsnet' } });
      // A promise nobody awaited (a watch callback, a timer) is logged with its cause instead of ending the daemon.
      process.on('unhandledRejection', (err) => logger.error({ err: err instanceof Error ? err.message : String(err) }, 'unhandled rejection'));
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
      const stores = await openStores(opts.stateDir, { ...(opts.node === undefined ? {} : { node: opts.node }), ...(cluster.store === undefined ? {} : { cluster: cluster.store }) });
      const loaded = await SavedState.load(stores, { stateDir: opts.stateDir, netnsPrefix: opts.netnsPrefix });
      const { saved } = loaded;
      const membership = await joinCluster(stores.cluster, {
        name: stores.node,
        address: opts.advertiseAddr,
        leaseTtl: cluster.leaseTtl,
        waitMs: (cluster.leaseTtl + 2) * 1000,
        ...(loaded.previousLease === undefined ? {} : { previous: loaded.previousLease }),
      });
      await saved.useLease(() => membership.lease);
      if (loaded.legacy !== undefined) await saved.importLegacy(loaded.legacy, opts.stateDir);
      await saved.reregister();
      membership.onEvent((e) => {
        logger.warn({ node: stores.node, event: e.type }, 'cluster membership');
        if (e.type === 'renewed') saved.reregister().catch((err: Error) => logger.error({ err: err.message }, 'endpoints and tasks could not be written under the new lease'));
      });
      const view = new ClusterView(stores.cluster, stores.node, logger.child({ part: 'cluster-view' }));
      new RegistryFeed(view, registry, logger.child({ part: 'registry-feed' }));
      await view.start();
      const nodes = await NodeList.open(stores.cluster);
      const peers = new OverlayPeers(view, nodes, { node: stores.node, netnsPrefix: opts.netnsPrefix, logger: logger.child({ part: 'overlay-peers' }) });
      const tunnels = new Tunnels(view, nodes, membership, stores.cluster, {
        node: stores.node,
        address: opts.advertiseAddr,
        ifname: opts.wgIfname,
        listenPort: wireguard.port,
        keyFile: join(opts.stateDir, 'wg.key'),
        // Not the bare mark: a restart's sweep removes the links with that alias its state does not name.
        owner: `${ownerMark(opts.stateDir)}/wg`,
        netnsPrefix: opts.netnsPrefix,
        guardTable: `${opts.nftTable}_ovenc`,
        rotateEveryMs: wireguard.rotateEveryMs,
        logger: logger.child({ part: 'tunnels' }),
      });
      const manager = new Manager({
        // The tunnel's pass after the peers': a namespace a change removed may take the tunnel down.
        settled: async () => {
          await peers.converge();
          await tunnels.converge();
        },
        tunnel: tunnels.up,
        saved,
        sandboxes: loaded.sandboxes,
        store: stores.cluster,
        view,
        readyNodes: () => nodes.ready(),
        stateDir: opts.stateDir,
        dns,
        logger,
        hostSearch: hostSearch(),
        defaultBridge: { device: opts.bridge, subnet: opts.bip },
        nftTable: opts.nftTable,
        netnsPrefix: opts.netnsPrefix,
        ...(vipBackend === undefined ? {} : { vipBackend }),
        owner: ownerMark(opts.stateDir),
      });
      nodes.onChange(() => manager.replicas.changed());
      await manager.restore();
      // The socket is bound inside serveControl's synchronous part: created 0600, never chmod-ed later.
      const umask = process.umask(0o177);
      const listening = serveControl({ manager, nodes, store: stores.cluster, tunnels }, socket, logger);
      process.umask(umask);
      const control = await listening;
      const metrics = metricsAt === undefined ? undefined : await serveMetrics(dns.metrics, metricsAt.address, metricsAt.port);
      logger.info({ socket, stateDir: opts.stateDir, node: stores.node, store: stores.cluster.kind, networks: manager.state.networks.length, sandboxes: manager.state.sandboxes.length }, 'ready');
      const stop = (signal: string): void => {
        logger.info({ signal }, 'shutting down; networks and sandboxes stay, the WireGuard tunnel goes');
        control.close();
        metrics?.close();
        // The tunnel is the daemon's (wireguard-go is its child): it goes now, and comes back with the next start.
        const tunnel = tunnels.stop().catch((err: Error) => logger.error({ err: err.message }, 'the WireGuard tunnel could not be removed'));
        void tunnel.then(() => {
          view.stop();
          nodes.close();
          // The lease is left to run out: the endpoints and tasks this node still runs keep answering until then, and a restart takes them over.
          return Promise.all([dns.close(), stores.cluster.close(), stores.local.close()]);
        }).then(() => process.exit(0));
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
}
