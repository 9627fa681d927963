import { Command, InvalidArgumentError, Option } from 'commander';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { allowPrefix } from '../../resolvers/acl/index.js';
import { aardvarkMain, isAardvarkCall } from './aardvark.js';
import { PLUGIN_ORDER } from '../../resolvers/index.js';
import { RecordsSource } from '../registry/records-source.js';
import { Registry } from '../registry/registry.js';
import { serveMetrics } from '../server/metrics-http.js';
import { createServer } from '../server/server.js';
import { parseHostPort, parseUpstream, resolvConfUpstreams } from '../server/upstreams.js';

const collect = <T>(parse: (s: string) => T) => (value: string, previous: T[] | undefined): T[] => [...(previous ?? []), parse(value)];

const integer = (min: number) => (value: string): number => {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}`);
  return n;
};

const argument = <T>(parse: (s: string) => T) => (value: string): T => {
  try {
    return parse(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

interface Options {
  listen?: { address: string; port: number }[];
  records?: string;
  watch: boolean;
  upstream?: ReturnType<typeof parseUpstream>[];
  scope?: string[];
  ttl: number;
  resolvers: string[];
  maxInflight: number;
  cacheSize: number;
  replaySize: number;
  cacheBytes: number;
  allow?: string[];
  rateLimit?: number;
  tcpMaxConnections: number;
  udpReceiveQueue: number;
  udpBatch: boolean;
  logLevel: string;
  metrics?: { address: string; port: number };
}

const program = new Command('tsnet-dns')
  .description('DNS for container networks: answers network-scoped names from a records file and forwards the rest.')
  .option('--listen <addr:port>', 'where to answer, UDP and TCP; repeatable (default 127.0.0.11:53)', collect(argument((s) => parseHostPort(s, 53, 'listen'))))
  .option('--records <file|dir>', 'records JSON file, or a directory of *.json merged; re-read on change and SIGHUP')
  .option('--no-watch', 'do not re-read the records on change, only on SIGHUP')
  .option('--upstream <ip[:port]>', 'server for names not in the records; repeatable (default: /etc/resolv.conf)', collect(argument(parseUpstream)))
  .option('--scope <net,...>', 'networks visible to askers that are no known endpoint (default: all)', (s) => s.split(',').filter(Boolean))
  .option('--ttl <seconds>', 'TTL of answers from the records', integer(0), 5)
  .option('--resolvers <list>', `resolvers to run, in fixed order (${PLUGIN_ORDER.join(',')})`, (s) => s.split(','), [...PLUGIN_ORDER])
  .option('--max-inflight <n>', 'forwarded queries in flight before more get SERVFAIL at once', integer(1), 1024)
  .option('--cache-size <n>', 'forwarded answers kept in the cache', integer(0), 10_000)
  .option('--replay-size <n>', 'answers from the records kept encoded, replayed with only the ID changed (0: off)', integer(0), 100_000)
  .option('--cache-bytes <n>', 'bytes the forwarded-answer cache may hold', integer(1024), 8 * 1024 * 1024)
  .option('--allow <cidr>', 'sources whose queries may be forwarded; repeatable (default: loopback and the records\' subnets); others get REFUSED for names not in the records', collect(argument((s) => (allowPrefix(s), s))))
  .option('--rate-limit <n>', 'UDP replies per second per client /24 (IPv6 /56); over it replies are dropped, every 2nd sent truncated', integer(1))
  .option('--tcp-max-connections <n>', 'TCP connections open at once per listener', integer(1), 256)
  .option('--udp-receive-queue <bytes>', 'receive queue asked for per UDP listener (past net.core.rmem_max when run as root)', integer(4096), 8 * 1024 * 1024)
  .option('--no-udp-batch', 'plain dgram sockets instead of one worker thread reading and answering every UDP listener with recvmmsg/sendmmsg')
  .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'))
  .option('--metrics <addr:port>', 'serve Prometheus metrics at http://ADDR:PORT/metrics', argument((s) => parseHostPort(s, 9153, 'metrics')))
  .showHelpAfterError();

async function main(): Promise<void> {
  if (isAardvarkCall(process.argv.slice(2))) return aardvarkMain(process.argv.slice(2));
  program.parse();
  const opts = program.opts<Options>();
  const logger = pino({ level: opts.logLevel, base: { name: 'tsnet-dns' } });
  const registry = new Registry();
  const source =
    opts.records === undefined
      ? undefined
      : new RecordsSource({
          path: opts.records,
          registry,
          onReload: (r) =>
            r.ok ? logger.info({ generation: r.generation }, 'records loaded') : logger.error({ err: r.error.message }, 'records refused; keeping the last good state'),
        });
  const upstreams = opts.upstream ?? resolvConfUpstreams();
  for (const net of opts.scope ?? []) {
    if (registry.network(net) === undefined) logger.warn({ network: net }, '--scope names a network not in the records');
  }
  const server = createServer({
    registry,
    resolvers: opts.resolvers,
    ttl: opts.ttl,
    upstreams,
    cacheSize: opts.cacheSize,
    replaySize: opts.replaySize,
    cacheBytes: opts.cacheBytes,
    maxInflight: opts.maxInflight,
    tcpMaxConnections: opts.tcpMaxConnections,
    udpReceiveQueue: opts.udpReceiveQueue,
    udpBatch: opts.udpBatch,
    ...(opts.allow === undefined ? {} : { allow: opts.allow }),
    ...(opts.rateLimit === undefined ? {} : { rateLimit: opts.rateLimit }),
    logger,
  });
  const listeners = await Promise.all(
    (opts.listen ?? [{ address: '127.0.0.11', port: 53 }]).map((l) => server.listen({ ...l, scope: opts.scope })),
  );
  const metricsServer = opts.metrics === undefined ? undefined : await serveMetrics(server.metrics, opts.metrics.address, opts.metrics.port);
  if (opts.watch) source?.start();
  logger.info(
    {
      listen: listeners.map((l) => `${l.address}:${l.port}`),
      metrics: metricsServer === undefined ? undefined : `${opts.metrics!.address}:${(metricsServer.address() as AddressInfo).port}`,
      upstreams: upstreams.map((u) => u.label), resolvers: opts.resolvers },
    'ready',
  );

  process.on('SIGHUP', () => source?.reload());
  const stop = (signal: string): void => {
    logger.info({ signal }, 'shutting down');
    source?.stop();
    metricsServer?.close();
    void server.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: Error) => {
  process.stderr.write(`tsnet-dns: ${err.message}\n`);
  process.exit(1);
});
