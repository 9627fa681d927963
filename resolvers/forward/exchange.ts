import type { Upstream } from '../../src/server/upstreams.js';
import { Flag, Rcode } from '../../src/wire/constants.js';
import type { Query } from '../../src/wire/query.js';
import type { FailureReason, UpstreamHealth } from './health.js';
import { scrub } from './scrub.js';
import { tcpExchange } from './tcp-exchange.js';
import type { UdpPool } from './udp-pool.js';
import type { Relayable } from '../../src/wire/reply.js';

export interface ExchangeOptions {
  poolFor(upstream: Upstream): UdpPool;
  /** The namespace TCP retries are made from (the pools'). */
  netns?: string;
  /** Every query is settled within this time (SERVFAIL at worst). */
  deadlineMs: number;
  /** The longest any one upstream is waited on before the next is asked too. */
  perServerMs: number;
  health: UpstreamHealth;
  onFailure(upstream: Upstream, reason: FailureReason): void;
}

/** On failure, `last` is the last server's failure, if any server failed rather than stayed silent. */
export type ExchangeResult = { reply: Relayable; upstream: Upstream } | { reply: null; reason: string; last?: FailureReason };

type Outcome = { kept: Relayable } | { failure: FailureReason };

/** One server's answer to `q`, scrubbed; a TC reply is fetched again over TCP. Never rejects. */
async function askOne(q: Query, upstream: Upstream, remainingMs: () => number, opts: ExchangeOptions): Promise<Outcome> {
  const udp = await opts.poolFor(upstream).exchange(q, remainingMs());
  if (udp.reply === null) return { failure: udp.reason };
  let reply = udp.reply;
  if (reply.readUInt16BE(2) & Flag.TC) {
    const tcp = await tcpExchange(upstream, q, remainingMs(), opts.netns);
    if (tcp === null) return { failure: 'tcp' };
    reply = tcp;
  }
  const kept = scrub(reply);
  if (kept === null) return { failure: 'malformed' };
  if (kept.rcode === Rcode.SERVFAIL) return { failure: 'servfail' };
  if (kept.rcode === Rcode.REFUSED) return { failure: 'refused' };
  return { kept };
}

/**
 * Asks the upstreams in the order their health gives, hedging: the next one is asked when the
 * current one fails (timeout, SERVFAIL, REFUSED, a bad reply) or has been silent for its
 * patience, while the earlier ones may still answer. A demoted server due for a probe is asked
 * alongside the first. The first usable reply wins. Every server asked is accounted for, even
 * after the query is settled: a silent server is a timeout once its patience runs out.
 */
export function exchange(q: Query, upstreams: readonly Upstream[], opts: ExchangeOptions): Promise<ExchangeResult> {
  if (upstreams.length === 0) return Promise.resolve({ reply: null, reason: 'no upstream servers' });
  const started = performance.now();
  const remainingMs = (): number => Math.max(0, opts.deadlineMs - (performance.now() - started));
  const { order, probe } = opts.health.plan(upstreams);
  const chain = probe === undefined ? order : order.filter((u) => u !== probe);
  const share = Math.floor(opts.deadlineMs / upstreams.length);
  return new Promise((resolve) => {
    let next = 0;
    let running = 0;
    let done = false;
    const deadline = setTimeout(() => settle({ reply: null, reason: `no answer within ${opts.deadlineMs} ms` }), opts.deadlineMs);

    function settle(result: ExchangeResult): void {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      resolve(result);
    }

    function ask(upstream: Upstream, isProbe: boolean): void {
      running++;
      const askedAt = performance.now();
      let late = false;
      let handedOn = isProbe; // a probe is beside the chain, never in it
      const handOn = (): void => {
        if (handedOn) return;
        handedOn = true;
        if (!done && next < chain.length) launch();
      };
      const patience = setTimeout(() => {
        late = true;
        opts.health.failed(upstream);
        opts.onFailure(upstream, 'timeout');
        handOn();
      }, isProbe ? opts.perServerMs : opts.health.patience(upstream, share));
      void askOne(q, upstream, remainingMs, opts)
        .catch((): Outcome => ({ failure: 'socket' }))
        .then((outcome) => {
          clearTimeout(patience);
          running--;
          if ('kept' in outcome) {
            opts.health.answered(upstream, performance.now() - askedAt, !late);
            return settle({ reply: outcome.kept, upstream });
          }
          if (!late) {
            opts.health.failed(upstream);
            opts.onFailure(upstream, outcome.failure);
          }
          handOn();
          if (running === 0 && next >= chain.length) {
            settle({ reply: null, reason: `every upstream failed (last ${upstream.label}: ${outcome.failure})`, last: outcome.failure });
          }
        });
    }

    function launch(): void {
      ask(chain[next++]!, false);
    }

    if (probe !== undefined) ask(probe, true);
    if (chain.length > 0) launch();
  });
}
