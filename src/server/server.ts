import { pino, type Logger } from 'pino';
import { chainOf, PLUGIN_ORDER, type ChainEntry } from '../../resolvers/index.js';
import { Registry, type Scope } from '../registry/registry.js';
import { Rcode } from '../wire/constants.js';
import { DnsMetrics } from './metrics.js';
import { Pipeline, type ListenerContext } from './pipeline.js';
import { compose, rcodeReply, type Resolver } from './resolver.js';
import { listenTcp, type TcpListener, type TcpOptions } from './tcp.js';
import { adoptUdp, serveUdp, type UdpServeOptions } from './udp.js';
import { RateLimiter } from './rate-limit.js';
import { BatchedUdp } from './batch/batched-udp.js';
import { boundPort } from './batch/mmsg.js';
import { REPLAY_MAX_BYTES } from './replay.js';
import { boundUdpFd, openListenFds } from '../netns/listen-sockets.js';
import { closeSync as closeFd } from 'node:fs';
import { resolvConfUpstreams, upstreamSet, type Upstream, type UpstreamSet } from './upstreams.js';

export interface ServerOptions {
  /** The names to serve; a new empty registry by default. */
  registry?: Registry;
  /**
   * Which resolvers run: built-ins by name (in PLUGIN_ORDER whatever the order given), and
   * plugins of the caller's own, each run right before the built-in that follows it in the list
   * (see `chainOf`). Default: every built-in.
   */
  resolvers?: readonly ChainEntry[];
  /** TTL of registry answers, seconds (default 5). */
  ttl?: number;
  /** Default upstreams of every listener (default: the nameservers of /etc/resolv.conf). */
  upstreams?: readonly Upstream[];
  /** Forwarded answers kept in the cache (default 10000). */
  cacheSize?: number;
  /** Registry answers kept encoded for replay (default 100000; 0 runs the chain for every query). */
  replaySize?: number;
  /** Bytes the forwarded-answer cache may hold (default 8 MiB). */
  cacheBytes?: number;
  /** CIDRs whose queries may be forwarded (default: loopback and the registry's subnets). */
  allow?: readonly string[];
  /** Forwarded queries in flight before more are answered SERVFAIL at once (default 1024). */
  maxInflight?: number;
  /** Idle TCP connections are closed after this (default 10 s). */
  tcpIdleTimeoutMs?: number;
  /** TCP connections open at once per listener (default 256). */
  tcpMaxConnections?: number;
  /** UDP replies per second per client /24 (IPv6 /56), slip 2; unlimited by default. */
  rateLimit?: number;
  /** Bytes of receive queue per UDP listener (default 8 MiB; the kernel doubles it). */
  udpReceiveQueue?: number;
  /**
   * UDP through one worker thread with recvmmsg/sendmmsg for every listener, replayable registry
   * answers given there (src/server/batch/); on by default. Where it cannot start, plain dgram.
   */
  udpBatch?: boolean;
  logger?: Logger;
  metrics?: DnsMetrics;
}

export interface ListenOptions {
  address: string;
  /** 0 picks a free port, the same for UDP and TCP. */
  port: number;
  /**
   * Networks a query sees when its source is no known endpoint (default: every network with
   * names); a function is asked again after every registry change.
   */
  scope?: readonly string[] | (() => readonly string[]);
  /** Overrides the server's upstreams for queries arriving here. */
  upstreams?: readonly Upstream[];
  /**
   * Servers chosen by the asker's address, before the listener's (a podman container's own
   * --dns, which aardvark-dns asks for that container alone); undefined for an asker keeps the listener's.
   */
  upstreamsFor?: (address: string) => readonly Upstream[] | undefined;
  /** Ask `upstreams` from inside this namespace rather than the host's. */
  upstreamNetns?: string;
  /** Listen inside this network namespace (e.g. /run/netns/NAME) instead of the host's. */
  netns?: string;
}

export interface Listener {
  readonly address: string;
  readonly port: number;
  close(): Promise<void>;
}

/** The DNS server: one resolver chain, any number of UDP+TCP listeners. */
export class DnsServer {
  readonly registry: Registry;
  readonly metrics: DnsMetrics;
  readonly logger: Logger;
  readonly #resolvers: Resolver[];
  readonly #pipeline: Pipeline;
  readonly #upstreams: readonly Upstream[];
  readonly #tcp: TcpOptions;
  readonly #limiter: RateLimiter | undefined;
  readonly #udpReceiveQueue: number;
  readonly #listeners = new Set<Listener>();
  readonly #batch: BatchedUdp | undefined;

  constructor({
    registry = new Registry(),
    resolvers = PLUGIN_ORDER,
    ttl = 5,
    upstreams = resolvConfUpstreams(),
    cacheSize = 10_000,
    replaySize = 100_000,
    cacheBytes = 8 * 1024 * 1024,
    maxInflight = 1024,
    allow,
    rateLimit,
    tcpIdleTimeoutMs = 10_000,
    tcpMaxConnections = 256,
    udpReceiveQueue = 8 * 1024 * 1024,
    udpBatch = true,
    logger = pino({ level: 'silent' }),
    metrics = new DnsMetrics(),
  }: ServerOptions = {}) {
    this.registry = registry;
    this.metrics = metrics;
    this.logger = logger;
    this.#upstreams = upstreams;
    this.#udpReceiveQueue = udpReceiveQueue;
    this.#limiter = rateLimit === undefined ? undefined : new RateLimiter({ perSecond: rateLimit });
    this.#tcp = {
      idleTimeoutMs: tcpIdleTimeoutMs,
      maxConnections: tcpMaxConnections,
      onDrop: (reason) => metrics.tcpDrop(reason),
      onError: (err) => logger.warn({ err: err.message }, 'tcp accept failed'),
    };
    const setup = {
      registry,
      logger,
      ttl,
      cacheSize,
      cacheBytes,
      maxInflight,
      allow,
      onUpstreamFailure: (u: string, reason: string) => metrics.upstreamFailure(u, reason),
      onCache: (hit: boolean) => metrics.cache(hit),
    };
    this.#resolvers = chainOf(resolvers).map((plugin) => {
      const r = plugin.setup({ ...setup, logger: logger.child({ resolver: plugin.name }) });
      if (r.name !== plugin.name) throw new Error(`resolver plugin ${plugin.name}: its setup made a resolver named ${JSON.stringify(r.name)}`);
      return r;
    });
    const chain = compose(this.#resolvers, (q) => rcodeReply(q, Rcode.REFUSED, 'none'));
    // A stored answer may be replayed without the chain when every resolver before its maker may be skipped.
    const firstFixed = this.#resolvers.findIndex((r) => r.bypassable !== true);
    const replayable = new Set(this.#resolvers.slice(0, firstFixed < 0 ? undefined : firstFixed + 1).map((r) => r.name));
    this.#pipeline = new Pipeline({ registry, chain, metrics, logger, replayable, replaySize });
    this.#batch = udpBatch ? this.#batched(replaySize, rateLimit) : undefined;
  }

  #batched(replaySize: number, rateLimit: number | undefined): BatchedUdp | undefined {
    try {
      return new BatchedUdp({
        pipeline: this.#pipeline,
        registry: this.registry,
        metrics: this.metrics,
        logger: this.logger,
        maxEntries: replaySize,
        maxBytes: REPLAY_MAX_BYTES,
        onFailure: (listeners) => {
          for (const l of listeners) {
            this.#dgram(l.fd, l.address, l.port, l.ctx, l.netns).then(
              (end) => l.adopted(end.close),
              (err: Error) => this.logger.error({ err: err.message, address: l.address, port: l.port }, 'a listener could not go back to dgram'),
            );
          }
        },
        ...(rateLimit === undefined ? {} : { rateLimit: { perSecond: rateLimit } }),
      });
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'batched udp unavailable: plain dgram sockets');
      return undefined;
    }
  }

  /** Opens UDP and TCP on one address and port. */
  async listen(opts: ListenOptions): Promise<Listener> {
    const ctx = this.#context(opts);
    const { udp, tcp } = opts.netns === undefined ? await this.#bind(opts.address, opts.port, ctx) : await this.#adopt(opts, ctx);
    const listener: Listener = {
      address: opts.address,
      port: udp.port,
      close: async () => {
        this.#listeners.delete(listener);
        for (const set of [ctx.upstreams, ...ctx.askerSets()]) for (const r of this.#resolvers) r.release?.(set);
        await udp.close();
        await tcp.close();
      },
    };
    this.#listeners.add(listener);
    this.logger.info({ address: opts.address, port: udp.port, netns: opts.netns }, 'listening');
    return listener;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#listeners].map((l) => l.close()));
    await Promise.all(this.#resolvers.map((r) => r.close?.()));
    await this.#batch?.close();
  }

  #context(opts: ListenOptions): ListenerContext & { askerSets(): UpstreamSet[] } {
    const upstreams = upstreamSet(opts.upstreams ?? this.#upstreams, opts.upstreams === undefined ? undefined : opts.upstreamNetns);
    const chosen = opts.upstreamsFor;
    // One set per distinct server list, so that the forward resolver's sockets for it are shared.
    const sets = new Map<string, UpstreamSet>();
    const byList = new WeakMap<readonly Upstream[], UpstreamSet>();
    const upstreamsFor =
      chosen === undefined
        ? undefined
        : (address: string): UpstreamSet | undefined => {
            const servers = chosen(address);
            if (servers === undefined || servers.length === 0) return undefined;
            // A forwarded query must not rebuild the set's key: the list the caller holds finds it at once.
            const known = byList.get(servers);
            if (known !== undefined) return known;
            const fresh = upstreamSet(servers);
            const set = sets.get(fresh.key) ?? fresh;
            sets.set(set.key, set);
            byList.set(servers, set);
            return set;
          };
    const base = { upstreams, askerSets: () => [...sets.values()], ...(upstreamsFor === undefined ? {} : { upstreamsFor }) };
    if (opts.scope === undefined) return { ...base, defaultScope: () => this.registry.allScope };
    let cached: { generation: number; scope: Scope } | undefined;
    const scope = opts.scope;
    return {
      ...base,
      defaultScope: () => {
        if (cached?.generation !== this.registry.generation) {
          cached = { generation: this.registry.generation, scope: this.registry.scope(typeof scope === 'function' ? scope() : scope) };
        }
        return cached.scope;
      },
    };
  }

  #udpOptions(netns: string | undefined): UdpServeOptions {
    return {
      onError: (err) => this.logger.error({ err, netns }, 'udp socket error'),
      ...(this.#limiter === undefined ? {} : { limiter: this.#limiter }),
    };
  }

  /** Serves the bound UDP socket `fd`: on the batched path, or handed to Node. */
  async #serveUdp(fd: number, address: string, port: number, ctx: ListenerContext, netns: string | undefined): Promise<UdpEnd> {
    const batch = this.#batch;
    if (batch !== undefined && (await batch.ready)) {
      const index = batch.add({ fd, ctx, address, port, netns });
      return {
        port: boundPort(fd),
        close: async () => {
          if (await batch.remove(index)) closeFd(fd);
        },
      };
    }
    return this.#dgram(fd, address, port, ctx, netns);
  }

  /** Hands the bound socket `fd` to Node's dgram, one callback per datagram. */
  async #dgram(fd: number, address: string, port: number, ctx: ListenerContext, netns: string | undefined): Promise<UdpEnd> {
    const socket = await adoptUdp(address, port, fd);
    serveUdp(socket, this.#pipeline, ctx, this.#udpOptions(netns));
    return {
      port: socket.address().port,
      close: async () => {
        socket.close();
      },
    };
  }

  /** Sockets opened inside a namespace, then served here. */
  async #adopt(opts: ListenOptions, ctx: ListenerContext): Promise<{ udp: UdpEnd; tcp: TcpListener }> {
    const fds = openListenFds(opts.netns!, opts.address, opts.port, this.#udpReceiveQueue);
    const udp = await this.#serveUdp(fds.udp, opts.address, opts.port, ctx, opts.netns);
    try {
      return { udp, tcp: await listenTcp(opts.address, opts.port, this.#pipeline, ctx, this.#tcp, fds.tcp) };
    } catch (err) {
      await udp.close();
      closeFd(fds.tcp);
      throw err;
    }
  }

  /** With port 0, UDP picks the port and TCP takes the same; a clash with another TCP user is retried. */
  async #bind(address: string, port: number, ctx: ListenerContext): Promise<{ udp: UdpEnd; tcp: TcpListener }> {
    for (let attempt = 0; ; attempt++) {
      const udp = await this.#serveUdp(boundUdpFd(address, port, this.#udpReceiveQueue), address, port, ctx, undefined);
      try {
        return { udp, tcp: await listenTcp(address, udp.port, this.#pipeline, ctx, this.#tcp) };
      } catch (err) {
        await udp.close();
        if (port !== 0 || attempt >= 5) throw err;
      }
    }
  }
}

/** A listener's UDP side, on whichever path serves it. */
interface UdpEnd {
  port: number;
  close(): Promise<void>;
}

/** Builds a DNS server; `listen()` opens its sockets. */
export const createServer = (options: ServerOptions = {}): DnsServer => new DnsServer(options);
