import type { DnsServer, Listener } from '../server/server.js';
import { parseUpstream } from '../server/upstreams.js';
import { netnsPath } from './dataplane.js';
import { dnsScope } from './projection.js';
import type { DaemonState, SandboxRecord } from './state.js';

/**
 * The resolver of each sandbox: a listener at 127.0.0.11:53 inside its namespace, scoped to its
 * networks as they are at every query, with its `--dns` servers asked from inside it.
 */
export class SandboxResolvers {
  readonly #listeners = new Map<string, Listener>();

  constructor(
    readonly dns: DnsServer,
    readonly state: () => DaemonState,
  ) {}

  /** Opens the sandbox's listener unless it is open already. */
  async open(sb: SandboxRecord): Promise<void> {
    if (this.#listeners.has(sb.id)) return;
    const upstreams = sb.dns.length > 0 ? sb.dns.map(parseUpstream) : undefined;
    const listener = await this.dns.listen({
      address: '127.0.0.11',
      port: 53,
      netns: netnsPath(sb.netns!),
      scope: () => dnsScope(this.state(), sb),
      ...(upstreams === undefined ? {} : { upstreams, upstreamNetns: netnsPath(sb.netns!) }),
    });
    this.#listeners.set(sb.id, listener);
  }

  async close(sb: SandboxRecord): Promise<void> {
    const listener = this.#listeners.get(sb.id);
    this.#listeners.delete(sb.id);
    await listener?.close();
  }
}
