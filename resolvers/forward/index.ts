import type { Reply, Resolver, ResolverPlugin } from '../../src/server/resolver.js';
import type { Upstream } from '../../src/server/upstreams.js';
import { Rcode } from '../../src/wire/constants.js';
import type { Query } from '../../src/wire/query.js';
import { emptyReply, replyFor } from '../../src/wire/reply.js';
import { exchange } from './exchange.js';
import { UdpPool } from './udp-pool.js';

/** How long a failed upstream is asked last, behind the ones that have been answering. */
const PENALTY_MS = 30_000;

const servfail = (q: Query): Reply => ({
  bytes: emptyReply(q.raw, Rcode.SERVFAIL, q.questionEnd, q.edns),
  rcode: Rcode.SERVFAIL,
  resolver: 'forward',
});

/** The upstream's reply made ours: the client's ID, RD and question bytes (its 0x20 case). */
function relay(q: Query, reply: Buffer): Reply {
  const out = replyFor(q, reply);
  return { bytes: out, rcode: out.readUInt16BE(2) & 0xf, resolver: 'forward' };
}

/**
 * Sends what no earlier resolver answered to the upstreams of the asker (the sandbox's own
 * servers, or the listener's). Failed servers go to the back of the line for a while.
 */
export const forward: ResolverPlugin = {
  name: 'forward',
  setup({ logger, maxInflight, onUpstreamFailure }): Resolver {
    // One pool per namespace the upstreams are asked from ('' is the host's).
    const pools = new Map<string, UdpPool>();
    const poolFor = (netns: string | undefined): UdpPool => {
      let pool = pools.get(netns ?? '');
      if (pool === undefined) {
        pool = new UdpPool({ onDrop: (reason) => onUpstreamFailure('(unknown)', `dropped-${reason}`), ...(netns === undefined ? {} : { netns }) });
        pools.set(netns ?? '', pool);
      }
      return pool;
    };
    const failedAt = new Map<string, number>();
    let inflight = 0;

    const order = (servers: readonly Upstream[]): readonly Upstream[] => {
      const now = Date.now();
      const penalised = (u: Upstream): boolean => now - (failedAt.get(u.label) ?? -Infinity) < PENALTY_MS;
      if (!servers.some(penalised)) return servers;
      return [...servers.filter((u) => !penalised(u)), ...servers.filter(penalised)];
    };

    return {
      name: 'forward',
      async resolve(q, ctx) {
        if (inflight >= maxInflight) {
          onUpstreamFailure('(all)', 'inflight-limit');
          return servfail(q);
        }
        inflight++;
        try {
          const result = await exchange(q, order(ctx.upstreams.servers), {
            pool: poolFor(ctx.upstreams.netns),
            ...(ctx.upstreams.netns === undefined ? {} : { netns: ctx.upstreams.netns }),
            deadlineMs: 1900,
            perServerMs: 1000,
            onFailure(upstream, reason) {
              failedAt.set(upstream.label, Date.now());
              onUpstreamFailure(upstream.label, reason);
            },
          });
          if (result.reply === null) {
            logger.debug({ name: q.name, type: q.type, reason: result.reason }, 'forward failed');
            return servfail(q);
          }
          failedAt.delete(result.upstream.label);
          return relay(q, result.reply);
        } finally {
          inflight--;
        }
      },
      release(upstreams) {
        if (upstreams.netns === undefined) return;
        pools.get(upstreams.netns)?.close();
        pools.delete(upstreams.netns);
      },
      close: () => {
        for (const p of pools.values()) p.close();
      },
    };
  },
};
