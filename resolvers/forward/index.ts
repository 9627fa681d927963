import { rcodeReply, type Reply, type Resolver, type ResolverPlugin } from '../../src/server/resolver.js';
import type { Upstream } from '../../src/server/upstreams.js';
import { Rcode } from '../../src/wire/constants.js';
import type { Query } from '../../src/wire/query.js';
import { relayTo } from '../../src/wire/reply.js';
import { exchange } from './exchange.js';
import { UpstreamHealth } from './health.js';
import { UdpPool } from './udp-pool.js';

const servfail = (q: Query): Reply => rcodeReply(q, Rcode.SERVFAIL, 'forward');

/**
 * Sends what no earlier resolver answered to the asker's upstreams (the sandbox's own servers,
 * or the listener's), in the order their health gives. Every failure on the way (a socket that
 * cannot be made, a namespace that is gone, silence, a bad reply) ends in SERVFAIL for this
 * query, a log line and a metric, never a thrown error.
 */
export const forward: ResolverPlugin = {
  name: 'forward',
  setup({ logger, maxInflight, onUpstreamFailure }): Resolver {
    // Per namespace the upstreams are asked from ('' is the host's): sockets per upstream, and
    // health, since a server reachable from the host may not be from a sandbox.
    const spaces = new Map<string, { pools: Map<string, UdpPool>; health: UpstreamHealth }>();
    const spaceOf = (netns: string | undefined) => {
      let space = spaces.get(netns ?? '');
      if (space === undefined) spaces.set(netns ?? '', (space = { pools: new Map(), health: new UpstreamHealth() }));
      return space;
    };
    const poolFor = (netns: string | undefined, upstream: Upstream): UdpPool => {
      const { pools } = spaceOf(netns);
      let pool = pools.get(upstream.label);
      if (pool === undefined) {
        pool = new UdpPool({ upstream, onDrop: (reason) => onUpstreamFailure(upstream.label, `dropped-${reason}`), ...(netns === undefined ? {} : { netns }) });
        pools.set(upstream.label, pool);
      }
      return pool;
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
            health: spaceOf(netns).health,
            onFailure: (upstream, reason) => onUpstreamFailure(upstream.label, reason),
          });
          if (result.reply === null) {
            // A socket that cannot be made (EMFILE, a namespace gone) is the host's trouble, not the
            // upstream's: worth a warning, at most one a second so a flood cannot fill the log.
            if (result.last === 'socket' && performance.now() - lastWarned > 1000) {
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
        for (const p of spaces.get(upstreams.netns)?.pools.values() ?? []) p.close();
        spaces.delete(upstreams.netns);
      },
      close: () => {
        for (const { pools } of spaces.values()) for (const p of pools.values()) p.close();
      },
    };
  },
};
