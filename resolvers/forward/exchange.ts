import type { Upstream } from '../../src/server/upstreams.js';
import { Flag, Rcode } from '../../src/wire/constants.js';
import type { Query } from '../../src/wire/query.js';
import { tcpExchange } from './tcp-exchange.js';
import type { UdpPool } from './udp-pool.js';

export interface ExchangeOptions {
  pool: UdpPool;
  /** The namespace TCP retries are made from (the pool's). */
  netns?: string;
  /** Every query is settled within this time (SERVFAIL at worst). */
  deadlineMs: number;
  /** The longest any one upstream is waited on before the next is asked too. */
  perServerMs: number;
  onFailure(upstream: Upstream, reason: 'timeout' | 'servfail' | 'refused' | 'tcp'): void;
}

export type ExchangeResult = { reply: Buffer; upstream: Upstream } | { reply: null; reason: string };

/**
 * Asks the upstreams in turn, hedging: the next one is asked when the current one fails
 * (timeout, SERVFAIL, REFUSED) or has been silent for its share of the deadline, while the
 * earlier ones may still answer. The first usable reply wins; a truncated one is fetched again
 * over TCP from the same server.
 */
export function exchange(q: Query, upstreams: readonly Upstream[], opts: ExchangeOptions): Promise<ExchangeResult> {
  if (upstreams.length === 0) return Promise.resolve({ reply: null, reason: 'no upstream servers' });
  const started = Date.now();
  const stagger = Math.min(opts.perServerMs, Math.floor(opts.deadlineMs / upstreams.length));
  return new Promise((resolve) => {
    let next = 0;
    let running = 0;
    let done = false;
    let lastFailure = 'timeout';
    let hedge: NodeJS.Timeout | undefined;
    const deadline = setTimeout(() => settle({ reply: null, reason: `no answer within ${opts.deadlineMs} ms` }), opts.deadlineMs);

    function settle(result: ExchangeResult): void {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      clearTimeout(hedge);
      resolve(result);
    }

    function failed(upstream: Upstream, reason: 'timeout' | 'servfail' | 'refused' | 'tcp'): void {
      opts.onFailure(upstream, reason);
      lastFailure = `${upstream.label}: ${reason}`;
      running--;
      if (next < upstreams.length) launch();
      else if (running === 0) settle({ reply: null, reason: `every upstream failed (last ${lastFailure})` });
    }

    async function ask(upstream: Upstream): Promise<void> {
      const remaining = opts.deadlineMs - (Date.now() - started);
      let reply = await opts.pool.exchange(upstream, q, remaining);
      if (done) return;
      if (reply !== null && reply.readUInt16BE(2) & Flag.TC) {
        reply = await tcpExchange(upstream, q, opts.deadlineMs - (Date.now() - started), opts.netns);
        if (done) return;
        if (reply === null) return failed(upstream, 'tcp');
      }
      if (reply === null) return failed(upstream, 'timeout');
      const rcode = reply.readUInt16BE(2) & 0xf;
      if (rcode === Rcode.SERVFAIL) return failed(upstream, 'servfail');
      if (rcode === Rcode.REFUSED) return failed(upstream, 'refused');
      settle({ reply, upstream });
    }

    function launch(): void {
      clearTimeout(hedge);
      const upstream = upstreams[next++]!;
      running++;
      void ask(upstream);
      if (next < upstreams.length) hedge = setTimeout(launch, stagger);
    }

    launch();
  });
}
