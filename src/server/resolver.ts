import type { Logger } from 'pino';
import type { Registry, Scope } from '../registry/registry.js';
import type { Query } from '../wire/query.js';
import { emptyReply, type Relayable } from '../wire/reply.js';
import type { UpstreamSet } from './upstreams.js';

/** Where the reply came from and what it says; `bytes` is a whole DNS message for the query. */
export interface Reply {
  bytes: Buffer;
  rcode: number;
  /** The resolver that produced it, for metrics. */
  resolver: string;
  /**
   * Set by resolvers that answer from the registry: the bytes depend only on (scope, name,
   * type, EDNS) until the next registry change, so the server may replay them. `shuffle`
   * says which equal-sized answer records to reorder on every reply (RFC 1794 round robin).
   */
  replayable?: { shuffle: ShuffleSpan | null };
  /** Set by `forward`: the scrubbed upstream reply, without OPT, that a cache may keep. */
  upstream?: Relayable;
  /**
   * Set by `cache` on what it answers from what it keeps: the kept reply, which answers the same
   * question to the same upstreams (DO and CD as asked) until its TTL runs out, aged.
   */
  cached?: CachedAnswer;
}

/** A kept upstream reply as `relayTo` serves it, and how long it holds. */
export interface CachedAnswer {
  kept: Relayable;
  ttlOffsets: readonly number[];
  /** When it was kept, in ms since the epoch (`performance.timeOrigin + performance.now()`): the same clock in every thread. */
  storedAt: number;
  /** Seconds it holds from then. */
  ttl: number;
}

/**
 * Whole seconds a reply kept at `storedAt` has been held at `now` (both ms on one clock), or
 * undefined once its `ttl` ran out: the one expiry rule of the cache and the batched path's worker.
 */
export function cachedAge(storedAt: number, ttl: number, now: number): number | undefined {
  const age = Math.floor((now - storedAt) / 1000);
  return age < ttl ? Math.max(0, age) : undefined;
}

export interface ShuffleSpan {
  start: number;
  size: number;
  /** One weight per record, in the order they were encoded. */
  weights: readonly number[];
}

/** What a resolver knows about who asked. */
export interface QueryContext {
  scope: Scope;
  source: { address: string; port: number };
  transport: 'udp' | 'tcp';
  /** Servers for names tsnet does not own: the sandbox's own, or the listener's default. */
  upstreams: UpstreamSet;
}

/** A reply with no records and `rcode` (NXDOMAIN, REFUSED, SERVFAIL) for `q`, made by `resolver`. */
export const rcodeReply = (q: Query, rcode: number, resolver: string): Reply => ({ bytes: emptyReply(q.raw, rcode, q.questionEnd, q.edns), rcode, resolver });

export type Next = () => Reply | Promise<Reply>;

/** One link in the chain: answers, or hands the query on with `next()`. */
export interface Resolver {
  readonly name: string;
  resolve(q: Query, ctx: QueryContext, next: Next): Reply | Promise<Reply>;
  /**
   * For one scope and question, whether it answers or calls `next()` depends on the registry
   * alone (as for local, services and ptr). The server replays a stored registry answer without
   * running the chain only when every resolver before the one that made it says so: a
   * resolver that decides by anything else (the asker's address, a list of its own) is never
   * skipped. Leave it unset unless that holds.
   */
  readonly bypassable?: boolean;
  /** A listener using `upstreams` closed: drop whatever was kept for them (sockets in its namespace). */
  release?(upstreams: UpstreamSet): void;
  close?(): void | Promise<void>;
}

/** What every resolver's setup gets: shared state and the knobs of its own that the CLI parsed. */
export interface ResolverSetup {
  registry: Registry;
  logger: Logger;
  /** TTL of answers from the registry, seconds. */
  ttl: number;
  cacheSize: number;
  /** Bytes the forward cache may hold. */
  cacheBytes: number;
  maxInflight: number;
  /** CIDRs that may recurse; undefined for loopback and the registry's subnets. */
  allow: readonly string[] | undefined;
  /** Reports an upstream failure for metrics. */
  onUpstreamFailure(upstream: string, reason: string): void;
  /** Reports a cache hit or miss for metrics. */
  onCache(hit: boolean): void;
}

export interface ResolverPlugin {
  readonly name: string;
  setup(options: ResolverSetup): Resolver;
}

/**
 * Runs `resolvers` in order. Replies stay synchronous as long as every resolver answers
 * synchronously, so registry and cache hits cost no promise. The terminal answers when no
 * resolver did (REFUSED: a name nobody here owns or can forward is not ours to deny).
 */
export function compose(resolvers: readonly Resolver[], terminal: (q: Query, ctx: QueryContext) => Reply) {
  return function run(q: Query, ctx: QueryContext): Reply | Promise<Reply> {
    const dispatch = (i: number): Reply | Promise<Reply> => {
      const r = resolvers[i];
      if (r === undefined) return terminal(q, ctx);
      let called = false;
      return r.resolve(q, ctx, () => {
        if (called) throw new Error(`resolver/${r.name}: next() called twice`);
        called = true;
        return dispatch(i + 1);
      });
    };
    return dispatch(0);
  };
}
