import { createServer, type Server } from 'node:http';
import type { DnsMetrics } from './metrics.js';

/** Serves Prometheus text at /metrics. */
export function serveMetrics(metrics: DnsMetrics, address: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end('not found\n');
      return;
    }
    metrics.text().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (err: Error) => res.writeHead(500).end(`${err.message}\n`),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`metrics ${address}:${port}: ${err.message}`, { cause: err })));
    server.listen(port, address, () => resolve(server));
  });
}
