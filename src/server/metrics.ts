import { collectDefaultMetrics, Registry as PromRegistry, type Metric } from 'prom-client';
import { QType, rcodeName, typeName } from '../wire/constants.js';
import { BUCKETS, bucketOf } from './buckets.js';

/** Query types counted by name: what resolvers ask for; the rest are OTHER. */
const METERED_TYPES = new Set([...Object.values(QType), 64, 65, 257, 43, 48, 46, 47, 50, 52, 99]);
const OTHER_TYPE = 0;
/** RCODEs up to BADCOOKIE (23) by name; anything higher is OTHER. */
const MAX_METERED_RCODE = 23;
const OTHER_RCODE = 0xfff;

type Sample = { labels: Record<string, string | number>; value: number; metricName?: string };

/** A metric whose samples are read from plain counters at scrape time. */
function scraped(name: string, help: string, type: 'counter' | 'histogram', samples: () => Sample[]): Metric {
  return {
    name,
    help,
    type,
    aggregator: 'sum',
    get: async () => ({ name, help, type, aggregator: 'sum', values: samples() }),
  } as unknown as Metric;
}

/** Queries answered elsewhere (the batched UDP worker's replays and cache hits), read at every scrape. */
export interface QueryTally {
  /** Replayed answers by query type. */
  replays(): Iterable<[type: number, count: number]>;
  /** Answers from the forward cache, by query type and rcode. */
  cached(): Iterable<[type: number, rcode: number, count: number]>;
  /** Their counts per histogram bucket, and the sum of their times in seconds. */
  buckets(): readonly number[];
  seconds(): number;
}

/**
 * Query metrics. The hot path only bumps plain numbers in maps; prom-client turns them into
 * Prometheus text when scraped, so a query pays no label hashing or histogram call.
 */
export class DnsMetrics {
  readonly registry = new PromRegistry();
  /** (resolver index, type, rcode) packed in one number → count: no key string per query. */
  readonly #queries = new Map<number, number>();
  readonly #resolverIndex = new Map<string, number>();
  readonly #resolverNames: string[] = [];
  readonly #upstreamFailures = new Map<string, number>();
  readonly #buckets = new Array<number>(BUCKETS.length + 1).fill(0);
  #latencySum = 0;
  readonly #tcpDrops = new Map<string, number>();
  #cacheHits = 0;
  #cacheMisses = 0;
  readonly #tallies: QueryTally[] = [];

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    for (const m of [
      scraped('tsnet_dns_queries_total', 'DNS queries answered, by query type, rcode and resolver.', 'counter', () =>
        [...this.#withTallies()].map(([key, value]) => ({
          labels: {
            type: Math.floor(key / 0x1000) % 0x10000 === OTHER_TYPE ? 'OTHER' : typeName(Math.floor(key / 0x1000) % 0x10000),
            rcode: key % 0x1000 === OTHER_RCODE ? 'OTHER' : rcodeName(key % 0x1000),
            resolver: this.#resolverNames[Math.floor(key / 0x10000000)]!,
          },
          value,
        })),
      ),
      scraped('tsnet_dns_upstream_failures_total', 'Upstream failures and dropped replies, by upstream and reason.', 'counter', () =>
        [...this.#upstreamFailures].map(([key, value]) => {
          const [upstream = '', reason = ''] = key.split('|');
          return { labels: { upstream, reason }, value };
        }),
      ),
      scraped('tsnet_dns_cache_total', 'Lookups in the forwarded-answer cache, by result.', 'counter', () => [
        { labels: { result: 'hit' }, value: this.#cacheHits + this.#tallies.reduce((n, t) => n + [...t.cached()].reduce((m, [, , c]) => m + c, 0), 0) },
        { labels: { result: 'miss' }, value: this.#cacheMisses },
      ]),
      scraped('tsnet_dns_tcp_connections_dropped_total', 'TCP connections refused or closed by the server, by reason.', 'counter', () =>
        [...this.#tcpDrops].map(([reason, value]) => ({ labels: { reason }, value })),
      ),
      scraped('tsnet_dns_request_duration_seconds', 'Time from a query read to its reply written.', 'histogram', () => this.#histogram()),
    ]) {
      this.registry.registerMetric(m);
    }
  }

  /** One answered query; `seconds` is its time in the server. */
  query(type: number, rcode: number, resolver: string, seconds: number): void {
    const key = this.#key(resolver, type, rcode);
    this.#queries.set(key, (this.#queries.get(key) ?? 0) + 1);
    this.#buckets[bucketOf(seconds)]!++;
    this.#latencySum += seconds;
  }

  upstreamFailure(upstream: string, reason: string): void {
    const key = `${upstream}|${reason}`;
    this.#upstreamFailures.set(key, (this.#upstreamFailures.get(key) ?? 0) + 1);
  }

  /** A TCP connection refused (over the limit, accept failed) or closed (idle, stalled). */
  tcpDrop(reason: string): void {
    this.#tcpDrops.set(reason, (this.#tcpDrops.get(reason) ?? 0) + 1);
  }

  cache(hit: boolean): void {
    if (hit) this.#cacheHits++;
    else this.#cacheMisses++;
  }

  /** Counts `tally` in every scrape from now on. */
  addTally(tally: QueryTally): void {
    this.#tallies.push(tally);
  }

  #withTallies(): Map<number, number> {
    if (this.#tallies.length === 0) return this.#queries;
    const all = new Map(this.#queries);
    for (const tally of this.#tallies) {
      for (const [type, count] of tally.replays()) {
        const key = this.#key('replay', type, 0);
        all.set(key, (all.get(key) ?? 0) + count);
      }
      for (const [type, rcode, count] of tally.cached()) {
        const key = this.#key('cache', type, rcode);
        all.set(key, (all.get(key) ?? 0) + count);
      }
    }
    return all;
  }

  /** (resolver, type, rcode) as one number. */
  #key(resolver: string, type: number, rcode: number): number {
    let r = this.#resolverIndex.get(resolver);
    if (r === undefined) {
      r = this.#resolverNames.push(resolver) - 1;
      this.#resolverIndex.set(resolver, r);
    }
    // Labels come from the asker and the upstream: anything outside the known sets is counted
    // as OTHER, or 65536 query types times 4096 rcodes would grow this map and every scrape.
    const t = METERED_TYPES.has(type) ? type : OTHER_TYPE;
    return (r * 0x10000 + t) * 0x1000 + (rcode <= MAX_METERED_RCODE ? rcode : OTHER_RCODE);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  #histogram(): Sample[] {
    const name = 'tsnet_dns_request_duration_seconds';
    const counts = [...this.#buckets];
    let sum = this.#latencySum;
    for (const tally of this.#tallies) {
      tally.buckets().forEach((n, i) => (counts[i]! += n));
      sum += tally.seconds();
    }
    let cumulative = 0;
    const samples: Sample[] = BUCKETS.map((le, i) => {
      cumulative += counts[i]!;
      return { labels: { le }, value: cumulative, metricName: `${name}_bucket` };
    });
    cumulative += counts[BUCKETS.length]!;
    samples.push({ labels: { le: '+Inf' }, value: cumulative, metricName: `${name}_bucket` });
    samples.push({ labels: {}, value: sum, metricName: `${name}_sum` });
    samples.push({ labels: {}, value: cumulative, metricName: `${name}_count` });
    return samples;
  }
}
