import { isIP } from 'node:net';
import { checkIfname } from '../link/names.js';
import { toolOutput } from '../exec/tool-runner.js';
import { systemTool } from '../tools.js';
import { isWgKey } from './keys.js';

/**
 * `wg` (wireguard-tools) for both kinds of device: it talks netlink to a kernel one in the
 * daemon's namespace and the UAPI socket (/var/run/wireguard/IFNAME.sock) to wireguard-go's,
 * so the code above needs no second path. Every value reaching it is checked here first.
 */

/** One peer as `wg set` takes it: its key, where it is reached, the one tunnel address it may use. */
export interface WgPeer {
  publicKey: string;
  /** `ADDR:PORT` (IPv6 as `[ADDR]:PORT`). */
  endpoint: string;
  /** Its tunnel address (one /32 or /128 each). */
  allowedIp: string;
}

/** A peer as `wg show dump` reports it. */
export interface WgPeerState extends WgPeer {
  /** Seconds since the epoch of its latest handshake; 0 for none yet. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
}

/** A device as `wg show dump` reports it; the private key it prints is dropped on reading. */
export interface WgState {
  publicKey: string;
  listenPort: number;
  peers: WgPeerState[];
}

const fail = (message: string): Error => new Error(`wireguard/wg: ${message}`);

/** `ADDR:PORT` with an IP address and a port, the only endpoint form `wg` is given. */
export function checkEndpoint(endpoint: string): void {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(endpoint);
  const ip = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (ip === undefined || isIP(ip) === 0 || (m?.[1] !== undefined) !== (isIP(ip) === 6) || !(port >= 1 && port <= 65535)) throw fail(`endpoint ${JSON.stringify(endpoint.slice(0, 60))} is not ADDR:PORT`);
}

const checkPeer = (p: { publicKey: string; endpoint: string; allowedIp: string }): void => {
  if (!isWgKey(p.publicKey)) throw fail(`peer key ${JSON.stringify(String(p.publicKey).slice(0, 60))} is not a WireGuard key`);
  checkEndpoint(p.endpoint);
  if (isIP(p.allowedIp) === 0) throw fail(`peer address ${JSON.stringify(p.allowedIp.slice(0, 60))} is not an IP address`);
};

const wg = (args: readonly string[]): Promise<string> => toolOutput(systemTool('wg'), args, { timeoutMs: 10_000 });

/**
 * Sets the device's private key (read by `wg` from `keyFile`, never from a command line) and,
 * when given, its UDP port. The port only on a new device: setting it again makes wireguard-go
 * close and rebind its socket, for nothing.
 */
export async function wgSetKey(ifname: string, keyFile: string, listenPort?: number): Promise<void> {
  checkIfname(ifname, 'wireguard/wg: interface');
  if (listenPort !== undefined && (!Number.isInteger(listenPort) || listenPort < 1 || listenPort > 65535)) throw fail(`listen port ${listenPort} is not a port`);
  if (!/^\/[^\0\s]+$/.test(keyFile)) throw fail(`key file ${JSON.stringify(keyFile.slice(0, 80))} is not an absolute path without spaces`);
  await wg(['set', ifname, 'private-key', keyFile, ...(listenPort === undefined ? [] : ['listen-port', String(listenPort)])]);
}

/**
 * Seconds between keepalives to each peer. Also what makes a rotation quick: `wg` sends one at
 * once when it sets the interval, so a peer put with a new key is handshaken with now, not when
 * the rotated node's own retry comes (5 s later: a stream towards the rotated node, whose
 * receiver had nothing to send, paused 3.3 s without it).
 */
export const KEEPALIVE_SECONDS = 25;

/**
 * Adds or replaces `put` (endpoint set; `wg set` replaces the allowed addresses) and removes the peers keyed
 * `drop`, in one `wg set`. A peer whose key changed is one dropped and one put: its allowed
 * address moves to the new key in the same call.
 */
export async function wgSetPeers(ifname: string, put: readonly WgPeer[], drop: readonly string[]): Promise<void> {
  checkIfname(ifname, 'wireguard/wg: interface');
  if (put.length === 0 && drop.length === 0) return;
  for (const k of drop) if (!isWgKey(k)) throw fail(`peer key ${JSON.stringify(String(k).slice(0, 60))} is not a WireGuard key`);
  put.forEach(checkPeer);
  const bits = (ip: string): number => (isIP(ip) === 6 ? 128 : 32);
  await wg([
    'set',
    ifname,
    ...drop.flatMap((k) => ['peer', k, 'remove']),
    ...put.flatMap((p) => ['peer', p.publicKey, 'endpoint', p.endpoint, 'persistent-keepalive', String(KEEPALIVE_SECONDS), 'allowed-ips', `${p.allowedIp}/${bits(p.allowedIp)}`]),
  ]);
}

/** Parses `wg show IFNAME dump`: the device's line (private key first, never kept), then one per peer. */
export function parseDump(text: string): WgState {
  const [device, ...peers] = text.split('\n').filter((l) => l !== '');
  const d = device?.split('\t');
  if (d === undefined || d.length < 4 || !isWgKey(d[1])) throw fail(`wg show dump: no device line in ${JSON.stringify(text.slice(0, 40))}`);
  return {
    publicKey: d[1],
    listenPort: Number(d[2]),
    peers: peers.map((line) => {
      const [publicKey = '', , endpoint = '', allowed = '', handshake = '0', rx = '0', tx = '0'] = line.split('\t');
      return { publicKey, endpoint, allowedIp: allowed.split(',')[0]?.replace(/\/\d+$/, '') ?? '', latestHandshake: Number(handshake), rxBytes: Number(rx), txBytes: Number(tx) };
    }),
  };
}

/** The device's state as `wg` reads it. */
export async function wgShow(ifname: string): Promise<WgState> {
  checkIfname(ifname, 'wireguard/wg: interface');
  return parseDump(await wg(['show', ifname, 'dump']));
}
