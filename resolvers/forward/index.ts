import type { Reply, Resolver, ResolverPlugin } from '../../src/server/resolver.js';
import type { Upstream } from '../../src/server/upstreams.js';
import { Rcode } from '../../src/wire/constants.js';
import type { Query } from '../../src/wire/query.js';
import { emptyReply, relayTo } from '../../src/wire/reply.js';
import { exchange } from './exchange.js';
import { UpstreamHealth } from './health.js';
import { UdpPool } from './udp-pool.js';

const servfail = (q: Query): Reply => ({
  bytes: emptyReply(q.raw, Rcode.SERVFAIL, q.questionEnd, q.edns),
  rcode: Rcode.SERVFAIL,
  resolver: 'forward',
});

/**
 * Sends what no earlier resolver answered to the asker's upstreams (the sandbox's own servers,
 * or the listener's), in the order their health gives. Every failure on the way (a socket that
 * cannot be made, a namespace that is gone, silence, a bad reply) ends in SERVFAIL for this
 * query, a log line and a metric, never a thrown error.
 */
export const forward: ResolverPlugin = {
  name: 'forward',
  setup({ logger, maxInflight, onUpstreamFailure }): Resolver {
    // Sockets per namespace the upstreams are asked from ('' is the host's), then per upstream.
    const pools = new Map<string, Map<string, UdpPool>>();
    const poolFor = (netns: string | undefined, upstream: Upstream): UdpPool => {
      let byUpstream = pools.get(netns ?? '');
      if (byUpstream === undefined) pools.set(netns ?? '', (byUpstream = new Map()));
      let pool = byUpstream.get(upstream.label);
      if (pool === undefined) {
        pool = new UdpPool({ upstream, onDrop: (reason) => onUpstreamFailure(upstream.label, `dropped-${reason}`), ...(netns === undefined ? {} : { netns }) });
        byUpstream.set(upstream.label, pool);
      }
      return pool;
    };
    // Health is per namespace too: a server reachable from the host may not be from a sandbox.
    const health = new Map<string, UpstreamHealth>();
    const healthOf = (netns: string | undefined): UpstreamHealth => {
      let h = health.get(netns ?? '');
      if (h === undefined) health.set(netns ?? '', (h = new UpstreamHealth()));
      return h;
    };
    let inflight = 0;
    let lastWarned = -Infinity;

    return {
      name: 'forward',
      async resolve(q, ctx): Promise<Reply> {
        if (inflight >= maxInflight) {
          onUpstreamFailure('(all)', 'inflight-limit');
          return servfail(q);
        }
        inflight++;
        try {
          const { netns, servers } = ctx.upstreams;
          const result = await exchange(q, servers, {
            poolFor: (u) => poolFor(netns, u),
            ...(netns === undefined ? {} : { netns }),
            deadlineMs: 1600,
            perServerMs: 1000,
            health: healthOf(netns),
            onFailure: (upstream, reason) => onUpstreamFailure(upstream.label, reason),
          });
          if (result.reply === null) {
            // A socket that cannot be made (EMFILE, a namespace gone) is the host's trouble, not the
            // upstream's: worth a warning, at most one a second so a flood cannot fill the log.
            if (result.reason.includes(': socket') && performance.now() - lastWarned > 1000) {
              lastWarned = performance.now();
              logger.warn({ name: q.name, reason: result.reason }, 'forwarding failed: no socket to the upstream');
            } else {
              logger.debug({ name: q.name, type: q.type, reason: result.reason }, 'forward failed');
            }
            return servfail(q);
          }
          return { bytes: relayTo(q, result.reply), rcode: result.reply.rcode, resolver: 'forward', upstream: result.reply };
        } catch (err) {
          logger.error({ err, name: q.name, type: q.type }, 'forward failed unexpectedly');
          return servfail(q);
        } finally {
          inflight--;
        }
      },
      release(upstreams) {
        if (upstreams.netns === undefined) return;
        for (const p of pools.get(upstreams.netns)?.values() ?? []) p.close();
        pools.delete(upstreams.netns);
        health.delete(upstreams.netns);
      },
      close: () => {
        for (const byUpstream of pools.values()) for (const p of byUpstream.values()) p.close();
      },
    };
  },
};
