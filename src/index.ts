export { createServer, DnsServer, type ServerOptions, type ListenOptions, type Listener } from './server/server.js';
export { Registry, Scope, type RegistryChange } from './registry/registry.js';
export { parseRecords, RecordsError } from './registry/validate.js';
export type * from './registry/types.js';
export type { Resolver, ResolverPlugin, ResolverSetup, Reply, QueryContext } from './server/resolver.js';
export { parseUpstream, resolvConfUpstreams, type Upstream } from './server/upstreams.js';
export { DnsMetrics } from './server/metrics.js';
export { PLUGIN_ORDER } from '../resolvers/index.js';
