import { rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { ApiError, badRequest, notFound } from '../daemon/errors.js';
import type { Manager } from '../daemon/manager.js';
import { linkEnv } from '../daemon/projection.js';
import { dockerNetwork, parseConnect, parseNetworkCreate, parseSandboxCreate, sandboxView } from './docker-shapes.js';
import { parseServiceCreate, parseTaskAdd, parseTaskChange, serviceView } from './service-shapes.js';

/** The Engine API version whose /networks shapes tsnet follows. */
export const API_VERSION = '1.41';

type Handler = (m: Manager, params: string[], body: Record<string, unknown>, url: URL) => Promise<[number, unknown]> | [number, unknown];

const routes: [string, RegExp, Handler][] = [
  ['GET', /^\/_ping$/, () => [200, 'OK']],
  ['HEAD', /^\/_ping$/, () => [200, '']],
  ['GET', /^\/version$/, () => [200, { Version: '0.1.0', ApiVersion: API_VERSION, MinAPIVersion: '1.24', Os: 'linux', Arch: process.arch, Components: [{ Name: 'tsnet', Version: '0.1.0' }] }]],
  ['GET', /^\/networks$/, (m) => [200, m.state.networks.map((n) => dockerNetwork(n, m.state))]],
  ['POST', /^\/networks\/create$/, async (m, _p, body) => [201, { Id: (await m.createNetwork(parseNetworkCreate(body))).id, Warning: '' }]],
  ['POST', /^\/networks\/prune$/, async (m) => [200, { NetworksDeleted: await m.pruneNetworks() }]],
  ['GET', /^\/networks\/([^/]+)$/, async (m, [id]) => [200, { ...dockerNetwork(m.network(id!), m.state), Rules: await m.rules(id!) }]],
  ['DELETE', /^\/networks\/([^/]+)$/, async (m, [id]) => (await m.removeNetwork(id!), [204, null])],
  ['POST', /^\/networks\/([^/]+)\/connect$/, async (m, [id], body) => {
    const { sandbox, attach } = parseConnect(body);
    await m.connect(id!, sandbox, attach);
    return [200, null];
  }],
  ['POST', /^\/networks\/([^/]+)\/disconnect$/, async (m, [id], body) => (await m.disconnect(id!, String(body.Container ?? '')), [200, null])],
  ['GET', /^\/services$/, (m) => [200, m.services.services.map(serviceView)]],
  ['POST', /^\/services\/create$/, async (m, _p, body) => {
    const req = parseServiceCreate(body);
    const svc = await m.services.create(req);
    if (req.replicas !== undefined && req.replicas.count > 0) await m.replicas.scale(svc.name, req.replicas.count);
    return [201, serviceView(m.services.service(svc.name))];
  }],
  ['POST', /^\/services\/([^/]+)\/scale$/, async (m, [id], body) => {
    const n = body.Replicas;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 1000) throw badRequest(`Replicas: ${JSON.stringify(n)} is not an integer from 0 to 1000`);
    await m.replicas.scale(id!, n);
    return [200, serviceView(m.services.service(id!))];
  }],
  ['GET', /^\/services\/([^/]+)$/, (m, [id]) => [200, serviceView(m.services.service(id!))]],
  ['DELETE', /^\/services\/([^/]+)$/, async (m, [id]) => (await m.replicas.removeService(id!), [204, null])],
  ['POST', /^\/services\/([^/]+)\/tasks$/, async (m, [id], body) => [201, serviceView(await m.services.addTask(id!, parseTaskAdd(body)))]],
  ['POST', /^\/services\/([^/]+)\/tasks\/([^/]+)$/, async (m, [id, task], body) => (await m.services.updateTask(id!, task!, parseTaskChange(body)), [200, null])],
  ['DELETE', /^\/services\/([^/]+)\/tasks\/([^/]+)$/, async (m, [id, task]) => (await m.services.removeTask(id!, task!), [204, null])],
  ['GET', /^\/sandboxes$/, (m) => [200, m.state.sandboxes.map((s) => sandboxView(s, linkEnv(s)))]],
  ['POST', /^\/sandboxes\/create$/, async (m, _p, body) => {
    const sb = await m.createSandbox(parseSandboxCreate(body));
    return [201, sandboxView(sb, linkEnv(sb))];
  }],
  ['GET', /^\/sandboxes\/([^/]+)$/, (m, [id]) => {
    const sb = m.sandbox(id!);
    return [200, sandboxView(sb, linkEnv(sb))];
  }],
  ['DELETE', /^\/sandboxes\/([^/]+)$/, async (m, [id]) => (await m.removeSandbox(id!), [204, null])],
];

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new ApiError(400, `request body is not a JSON object: ${(err as Error).message}`);
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.setHeader('Api-Version', API_VERSION);
  res.setHeader('Docker-Experimental', 'false');
  res.setHeader('Server', 'tsnet/0.1.0');
  if (body === null || status === 204) {
    res.writeHead(status).end();
  } else if (typeof body === 'string') {
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' }).end(body);
  } else {
    res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body) + '\n');
  }
}

/** The control API on a Unix socket (mode 0600): Docker Engine API paths, with or without /v1.NN. */
export function serveControl(manager: Manager, socketPath: string, logger: Logger): Promise<Server> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://tsnet');
    const path = url.pathname.replace(/^\/v1\.\d+(?=\/)/, '');
    const method = req.method ?? 'GET';
    const route = routes.find(([m, re]) => m === method && re.test(path));
    const handle = async (): Promise<[number, unknown]> => {
      if (route === undefined) throw notFound(`page not found: ${method} ${path}`);
      const body = method === 'POST' ? await readBody(req) : {};
      return route[2](manager, route[1].exec(path)!.slice(1).map(decodeURIComponent), body, url);
    };
    handle().then(
      ([status, body]) => reply(res, status, body),
      (err: Error) => {
        const status = err instanceof ApiError ? err.status : 500;
        if (status === 500) logger.error({ err: err.message, method, path }, 'request failed');
        reply(res, status, { message: err.message });
      },
    );
  });
  rmSync(socketPath, { force: true });
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`control socket ${socketPath}: ${err.message}`, { cause: err })));
    // The caller holds the socket's lock (so the file is a dead daemon's) and sets the umask (0600).
    server.listen(socketPath, () => resolve(server));
  });
}
