import { rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { ApiError, badRequest, conflict, notFound } from '../daemon/errors.js';
import type { Manager } from '../daemon/manager.js';
import { linkEnv } from '../daemon/projection.js';
import type { SandboxCreate } from '../daemon/requests.js';
import { notNetns } from '../netns/is-netns.js';
import type { NodeList, NodeStatus } from '../cluster/node-list.js';
import { StoreUnavailableError, type Store } from '../store/store.js';
import { show } from '../registry/validate.js';
import { readJsonBody } from './body.js';
import { dockerNetwork, parseConnect, parseDisconnect, parseNetworkCreate, parseSandboxCreate, sandboxView } from './docker-shapes.js';
import { integer } from './fields.js';
import { LIST_FILTERS, networkListFilter, networkPruneFilter, parseFilters, PRUNE_FILTERS } from './filters.js';
import { overlayNeighbours, overlayPeers, tunnelView } from './overlay-shapes.js';
import type { Tunnels } from '../reconcile/tunnels.js';
import { isEncrypted } from '../cluster/objects.js';
import { parseServiceCreate, parseTaskAdd, parseTaskChange, serviceView } from './service-shapes.js';

/** The Engine API version whose /networks shapes tsnet follows. */
/** Ends our side of a connection and drops what still comes for up to 2 s before closing it. */
function lingerThenClose(req: IncomingMessage): void {
  const socket = req.socket;
  socket.end();
  socket.on('data', () => {});
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), 2000);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

export const API_VERSION = '1.41';

/** What the API serves from: this node's manager, the cluster's nodes, the store they live in, and its WireGuard tunnel. */
export interface Control {
  manager: Manager;
  nodes: NodeList;
  store: Store;
  tunnels: Tunnels;
}

type Handler = (c: Control, params: string[], body: Record<string, unknown>, url: URL) => Promise<[number, unknown]> | [number, unknown];

const routes: [string, RegExp, Handler][] = [
  ['GET', /^\/_ping$/, () => [200, 'OK']],
  ['HEAD', /^\/_ping$/, () => [200, '']],
  ['GET', /^\/version$/, () => [200, { Version: '0.1.0', ApiVersion: API_VERSION, MinAPIVersion: '1.24', Os: 'linux', Arch: process.arch, Components: [{ Name: 'tsnet', Version: '0.1.0' }] }]],
  ['GET', /^\/nodes$/, (c) => {
    const peers = neighbours(c);
    return [200, c.nodes.all().map((n) => nodeView(n, peers))];
  }],
  ['GET', /^\/nodes\/([^/]+)$/, (c, [id]) => {
    const n = c.nodes.get(id!);
    if (n === undefined) throw notFound(`node ${id!} not found`);
    return [200, nodeView(n, neighbours(c))];
  }],
  ['DELETE', /^\/nodes\/([^/]+)$/, async (c, [id]) => {
    const n = c.nodes.get(id!);
    if (n === undefined) throw notFound(`node ${id!} not found`);
    if (n.state === 'ready') throw conflict(`node ${id!} is ready: only a node that is down can be removed (stop its daemon first)`);
    await c.manager.removeNode(id!);
    c.nodes.forget(id!);
    return [200, null];
  }],
  ['GET', /^\/networks$/, ({ manager: m }, _p, _b, url) => {
    const keep = networkListFilter(parseFilters(url, LIST_FILTERS));
    return [200, m.state.networks.filter((n) => keep(n, m.networkUsers(n).length > 0)).map((n) => dockerNetwork(n, m.state))];
  }],
  ['POST', /^\/networks\/create$/, async ({ manager: m }, _p, body) => [201, { Id: (await m.createNetwork(parseNetworkCreate(body))).id, Warning: '' }]],
  ['POST', /^\/networks\/prune$/, async ({ manager: m }, _p, _b, url) => [200, { NetworksDeleted: await m.pruneNetworks(networkPruneFilter(parseFilters(url, PRUNE_FILTERS), Date.now())) }]],
  // The key is this node's, one for every encrypted overlay on it (one WireGuard interface per node): no network is named.
  ['POST', /^\/networks\/rotate-key$/, async ({ manager: m, tunnels }) => [200, { Node: m.node, PublicKey: (await tunnels.rotate()).publicKey }]],
  ['GET', /^\/networks\/([^/]+)$/, async ({ manager: m, nodes, tunnels }, [id]) => {
    const net = m.network(id!);
    const overlay = net.driver === 'overlay' ? { Peers: overlayPeers(m.endpointsOn(net.id), nodes) } : {};
    const tunnel = isEncrypted(net) ? { Tunnel: await tunnelView(tunnels) } : {};
    return [200, { ...dockerNetwork(net, m.state), Rules: await m.rules(id!), ...overlay, ...tunnel }];
  }],
  ['DELETE', /^\/networks\/([^/]+)$/, async ({ manager: m }, [id]) => (await m.removeNetwork(id!), [204, null])],
  ['POST', /^\/networks\/([^/]+)\/connect$/, async ({ manager: m }, [id], body) => {
    const { sandbox, attach } = parseConnect(body);
    await m.connect(id!, sandbox, attach);
    return [200, null];
  }],
  ['POST', /^\/networks\/([^/]+)\/disconnect$/, async ({ manager: m }, [id], body) => (await m.disconnect(id!, parseDisconnect(body)), [200, null])],
  ['GET', /^\/services$/, ({ manager: m }) => [200, m.services.services.map(serviceView)]],
  ['POST', /^\/services\/create$/, async ({ manager: m }, _p, body) => {
    const req = parseServiceCreate(body);
    const svc = await m.services.create(req);
    if (req.replicas !== undefined && req.replicas.count > 0) await m.replicas.scale(svc.name, req.replicas.count);
    return [201, serviceView(m.services.service(svc.name))];
  }],
  ['POST', /^\/services\/([^/]+)\/scale$/, async ({ manager: m }, [id], body) => {
    const n = integer(body.Replicas, 'Replicas', 0, 1000);
    if (n === undefined) throw badRequest('Replicas is required');
    await m.replicas.scale(id!, n);
    return [200, serviceView(m.services.service(id!))];
  }],
  ['GET', /^\/services\/([^/]+)$/, ({ manager: m }, [id]) => [200, serviceView(m.services.service(id!))]],
  ['DELETE', /^\/services\/([^/]+)$/, async ({ manager: m }, [id]) => (await m.replicas.removeService(id!), [204, null])],
  ['POST', /^\/services\/([^/]+)\/tasks$/, async ({ manager: m }, [id], body) => [201, serviceView(await m.services.addTask(id!, parseTaskAdd(body)))]],
  ['POST', /^\/services\/([^/]+)\/tasks\/([^/]+)$/, async ({ manager: m }, [id, task], body) => (await m.services.updateTask(id!, task!, parseTaskChange(body)), [200, null])],
  ['DELETE', /^\/services\/([^/]+)\/tasks\/([^/]+)$/, async ({ manager: m }, [id, task]) => (await m.services.removeTask(id!, task!), [204, null])],
  ['GET', /^\/sandboxes$/, ({ manager: m }) => [200, m.state.sandboxes.map((s) => sandboxView(s, linkEnv(s)))]],
  ['POST', /^\/sandboxes\/create$/, async ({ manager: m }, _p, body) => {
    const sb = await m.createSandbox(checkAdoptable(parseSandboxCreate(body)));
    return [201, sandboxView(sb, linkEnv(sb))];
  }],
  ['GET', /^\/sandboxes\/([^/]+)$/, ({ manager: m }, [id]) => {
    const sb = m.sandbox(id!);
    return [200, sandboxView(sb, linkEnv(sb))];
  }],
  ['DELETE', /^\/sandboxes\/([^/]+)$/, async ({ manager: m }, [id]) => (await m.removeSandbox(id!), [204, null])],
];

/**
 * A node in the shape of Docker's GET /nodes (a swarm node), as far as tsnet has its fields, and
 * tsnet's own `OverlayPeers`: the nodes it carries overlay traffic with.
 */
const nodeView = (n: NodeStatus, peers: ReadonlyMap<string, ReadonlySet<string>>) => ({
  ID: n.name,
  CreatedAt: n.node.startedAt,
  UpdatedAt: n.since.toISOString(),
  Spec: { Name: n.name, Role: 'worker', Availability: 'active' },
  Description: { Hostname: n.name },
  Status: { State: n.state, Addr: n.node.address },
  OverlayPeers: [...(peers.get(n.name) ?? [])].sort(),
});

const neighbours = ({ manager: m }: Control): Map<string, Set<string>> => overlayNeighbours(m.state.networks.filter((n) => n.driver === 'overlay'), (id) => m.endpointsOn(id));

/** A namespace to adopt (`netns` or `pid`) must be one: refused with 400 before anything is made. */
function checkAdoptable(req: SandboxCreate): SandboxCreate {
  const [field, path] = req.netns !== undefined ? ['netns', req.netns] : req.pid !== undefined ? ['pid', `/proc/${req.pid}/ns/net`] : [];
  const why = path === undefined ? undefined : notNetns(path);
  if (why !== undefined) throw badRequest(`${field}: ${show(path)} ${why}`);
  return req;
}

/** The path's parameters, percent-decoded; bad encoding is the caller's error. */
function params(match: RegExpExecArray): string[] {
  try {
    return match.slice(1).map(decodeURIComponent);
  } catch {
    throw badRequest(`path ${show(match[0])} has bad percent-encoding`);
  }
}

/** Error texts can quote what the caller sent: never more than this of it goes back (or to the log). */
const MAX_MESSAGE = 400;

function reply(res: ServerResponse, status: number, body: unknown, store: Store): void {
  res.setHeader('Api-Version', API_VERSION);
  res.setHeader('Docker-Experimental', 'false');
  res.setHeader('Server', 'tsnet/0.1.0');
  // On every answer, so that a client can tell a view the store no longer updates from a live one.
  res.setHeader('Tsnet-Store', `${store.kind}; health=${store.health}`);
  if (body === null || status === 204) {
    res.writeHead(status).end();
  } else if (typeof body === 'string') {
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' }).end(body);
  } else {
    res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body) + '\n');
  }
}

/** The control API on a Unix socket (mode 0600): Docker Engine API paths, with or without /v1.NN. */
export function serveControl(control: Control, socketPath: string, logger: Logger): Promise<Server> {
  const { store } = control;
  const server = createServer((req, res) => {
    const method = req.method ?? 'GET';
    let path = '';
    const handle = async (): Promise<[number, unknown]> => {
      const url = new URL(req.url ?? '/', 'http://tsnet');
      path = url.pathname.replace(/^\/v1\.\d+(?=\/)/, '');
      const route = routes.find(([m, re]) => m === method && re.test(path));
      if (route === undefined) throw notFound(`page not found: ${method} ${show(path)}`);
      const args = params(route[1].exec(path)!);
      // Refused before anything is made: a change half-made in the kernel could not be stored.
      if (method !== 'GET' && method !== 'HEAD' && store.health === 'down') {
        throw new StoreUnavailableError(`the cluster store (${store.kind}) is unreachable: changes are refused until it is back; names still resolve from what this node last saw`);
      }
      const body = method === 'POST' ? await readJsonBody(req) : {};
      return route[2](control, args, body, url);
    };
    handle().then(
      ([status, body]) => reply(res, status, body, store),
      (err: Error) => {
        const status = err instanceof ApiError ? err.status : err instanceof StoreUnavailableError ? 503 : 500;
        const message = err.message.length > MAX_MESSAGE ? `${err.message.slice(0, MAX_MESSAGE)}...` : err.message;
        if (status === 500) logger.error({ err: message, method, path: path.slice(0, MAX_MESSAGE) }, 'request failed');
        // A body too large is not kept: once the reply is out tsnet half-closes, reads on (and drops)
        // what the client is still sending for a moment so it can read the 413, then closes.
        // (No `Connection: close`: with it Node destroys the socket at once, and a client still
        // sending meets EPIPE before it reads the 413.)
        if (status === 413) res.once('finish', () => lingerThenClose(req));
        reply(res, status, { message }, store);
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
