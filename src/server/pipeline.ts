import type { Logger } from 'pino';
import type { Registry, Scope } from '../registry/registry.js';
import { Rcode } from '../wire/constants.js';
import { parseQuery, type Query } from '../wire/query.js';
import { emptyReply } from '../wire/reply.js';
import type { DnsMetrics } from './metrics.js';
import { ReplayCache, replayOf, type Replay } from './replay.js';
import { rcodeReply, type CachedAnswer, type QueryContext, type Reply } from './resolver.js';
import type { UpstreamSet } from './upstreams.js';

/** What a listener adds to a query: the scope for askers the registry does not know, and upstreams. */
export interface ListenerContext {
  defaultScope(): Scope;
  upstreams: UpstreamSet;
  /** Servers of the asker's own, by its address (undefined: the listener's). */
  upstreamsFor?(address: string): UpstreamSet | undefined;
}

/**
 * What a reply may be made from again, for the batched UDP path's own table: a stored registry
 * answer replayed here with the scope it was made for, or a forwarded reply the
 * cache holds, with the scope and upstreams it was asked for (what its chain run depended on).
 */
export type Keep = { kind: 'replay'; scope: Scope; stored: Replay } | { kind: 'cached'; scope: Scope; upstreams: string; cached: CachedAnswer };

/** Writes one reply; `q` is null for replies to queries that did not parse. */
export type Send = (reply: Buffer, q: Query | null, keep?: Keep) => void;

export interface PipelineOptions {
  registry: Registry;
  chain(q: Query, ctx: QueryContext): Reply | Promise<Reply>;
  metrics: DnsMetrics;
  logger: Logger;
  /** Resolvers whose registry answers may be replayed: none before them decides by anything but the registry. */
  replayable: ReadonlySet<string>;
  /** Registry answers kept ready to replay (0: none; every query runs the chain). */
  replaySize: number;
}

/**
 * From query bytes to reply bytes: parse, scope by the asker's address, replay a stored
 * registry answer if there is one, else run the resolver chain. Never throws.
 */
export class Pipeline {
  readonly #registry: Registry;
  readonly #chain: PipelineOptions['chain'];
  readonly #metrics: DnsMetrics;
  readonly #logger: Logger;
  readonly #replays: ReplayCache;
  readonly #replayable: ReadonlySet<string>;

  constructor({ registry, chain, metrics, logger, replayable, replaySize }: PipelineOptions) {
    this.#replayable = replayable;
    this.#registry = registry;
    this.#chain = chain;
    this.#metrics = metrics;
    this.#logger = logger;
    this.#replays = new ReplayCache(registry, replaySize);
  }

  /** Answers `raw` through `send`, now or later; false when the message gets no reply at all. */
  handle(raw: Buffer, source: { address: string; port: number }, transport: 'udp' | 'tcp', listener: ListenerContext, send: Send): boolean {
    const started = performance.now();
    const parsed = parseQuery(raw);
    if (parsed.kind === 'drop') return false;
    if (parsed.kind === 'error') {
      send(emptyReply(raw, parsed.rcode, parsed.questionEnd, parsed.edns), null);
      this.#metrics.query(0, parsed.rcode, 'wire', (performance.now() - started) / 1000);
      return true;
    }
    const q = parsed.query;
    const scope = this.#registry.scopeOf(source.address) ?? listener.defaultScope();
    const replay = this.#replays.get(scope, q);
    if (replay !== undefined) {
      send(ReplayCache.render(replay, q), q, { kind: 'replay', scope, stored: replay });
      this.#metrics.query(q.type, Rcode.NOERROR, 'replay', (performance.now() - started) / 1000);
      return true;
    }
    const generation = this.#registry.generation;
    const upstreams = listener.upstreamsFor?.(source.address) ?? listener.upstreams;
    const finish = (reply: Reply): void => {
      if (reply.replayable !== undefined && this.#replayable.has(reply.resolver) && generation === this.#registry.generation) {
        // Stored, but offered to the batched path's worker only when replayed here (the query
        // after): a name asked once costs the worker no copy.
        const stored = replayOf(reply.bytes, reply.replayable.shuffle);
        this.#replays.set(scope, q, stored);
        send(ReplayCache.render(stored, q), q);
      } else if (reply.cached !== undefined) {
        send(reply.bytes, q, { kind: 'cached', scope, upstreams: upstreams.key, cached: reply.cached });
      } else {
        send(reply.bytes, q);
      }
      this.#metrics.query(q.type, reply.rcode, reply.resolver, (performance.now() - started) / 1000);
    };
    const fail = (err: unknown): void => {
      this.#logger.error({ err, name: q.name, type: q.type }, 'resolver chain failed');
      finish(rcodeReply(q, Rcode.SERVFAIL, 'error'));
    };
    try {
      const reply = this.#chain(q, { scope, source, transport, upstreams });
      if (reply instanceof Promise) reply.then(finish, fail);
      else finish(reply);
    } catch (err) {
      fail(err);
    }
    return true;
  }
}
