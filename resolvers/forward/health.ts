import type { Upstream } from '../../src/server/upstreams.js';

/** Why an upstream was counted as failing, as `tsnet_dns_upstream_failures_total` labels it. */
export type FailureReason = 'timeout' | 'servfail' | 'refused' | 'tcp' | 'malformed' | 'unreachable' | 'socket';

interface Stats {
  /** Smoothed round-trip time, ms (RFC 6298's SRTT, alpha 1/8); undefined until the first answer. */
  srtt: number | undefined;
  /** Failures since the last timely answer. */
  failures: number;
  /** Until then the server is asked only after the healthy ones, and probed now and then. */
  demotedUntil: number;
}

export interface HealthOptions {
  /** The first demotion; each further failure doubles it, up to `maxBackoffMs`. */
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  /** The longest a server is waited on before the next is asked too. */
  maxPatienceMs?: number;
  /** The shortest wait, however fast a server has been: jitter on a loaded host is not failure. */
  minPatienceMs?: number;
  now?: () => number;
}

/** The plan for one query: who to ask in turn, and a demoted server to ask alongside to see if it is back. */
export interface AskPlan {
  order: Upstream[];
  probe: Upstream | undefined;
}

/**
 * What tsnet has seen of each upstream: how fast it answers and whether it has been failing.
 * A failing server moves behind the healthy ones for a time that doubles with each failure;
 * when that time is up it is asked once beside the query's first server (a probe that costs the
 * query nothing), and an answer in time brings it back. A server that keeps answering is waited
 * on about four round trips before the next is asked, never less than `minPatienceMs`.
 */
export class UpstreamHealth {
  readonly #stats = new Map<string, Stats>();
  readonly #base: number;
  readonly #max: number;
  readonly #maxPatience: number;
  readonly #minPatience: number;
  readonly #now: () => number;

  constructor({ baseBackoffMs = 1000, maxBackoffMs = 30_000, maxPatienceMs = 1000, minPatienceMs = 200, now = Date.now }: HealthOptions = {}) {
    this.#base = baseBackoffMs;
    this.#max = maxBackoffMs;
    this.#maxPatience = maxPatienceMs;
    this.#minPatience = minPatienceMs;
    this.#now = now;
  }

  #of(u: Upstream): Stats {
    let s = this.#stats.get(u.label);
    if (s === undefined) this.#stats.set(u.label, (s = { srtt: undefined, failures: 0, demotedUntil: 0 }));
    return s;
  }

  /** Healthy servers in the configured order, then the demoted ones, soonest back first. */
  plan(servers: readonly Upstream[]): AskPlan {
    const now = this.#now();
    const healthy: Upstream[] = [];
    const demoted: Upstream[] = [];
    for (const u of servers) (this.#of(u).failures === 0 ? healthy : demoted).push(u);
    if (demoted.length === 0) return { order: healthy, probe: undefined };
    demoted.sort((a, b) => this.#of(a).demotedUntil - this.#of(b).demotedUntil);
    const due = demoted[0]!;
    const probe = healthy.length > 0 && this.#of(due).demotedUntil <= now ? due : undefined;
    // A probed server is pushed back until the probe's outcome is known, so one probe at a time.
    if (probe !== undefined) this.#of(probe).demotedUntil = now + this.#maxPatience;
    return { order: [...healthy, ...demoted], probe };
  }

  /** How long to wait on `u` before asking the next server as well. */
  patience(u: Upstream, share: number): number {
    const { srtt } = this.#of(u);
    const limit = Math.min(this.#maxPatience, share);
    return srtt === undefined ? limit : Math.max(Math.min(this.#minPatience, limit), Math.min(limit, 4 * srtt));
  }

  /** `u` answered usefully after `rttMs`; late answers refine its RTT but do not forgive it. */
  answered(u: Upstream, rttMs: number, inTime: boolean): void {
    const s = this.#of(u);
    s.srtt = s.srtt === undefined ? rttMs : s.srtt + (rttMs - s.srtt) / 8;
    if (inTime) {
      s.failures = 0;
      s.demotedUntil = 0;
    }
  }

  failed(u: Upstream): void {
    const s = this.#of(u);
    s.failures++;
    s.demotedUntil = this.#now() + Math.min(this.#max, this.#base * 2 ** Math.min(s.failures - 1, 16));
  }
}
