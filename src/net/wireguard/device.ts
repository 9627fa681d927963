import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { checkIfname } from '../link/names.js';
import { ipBatch, ipJson, linkExists } from '../link/ip.js';
import { systemTool } from '../tools.js';

/** Which WireGuard a device is: the kernel's, or wireguard-go on a TUN device. */
export type WgKind = 'kernel' | 'wireguard-go';

/** Where wireguard-go listens for `wg`: one directory for every namespace of the mount namespace. */
export const uapiSocket = (ifname: string): string => `/var/run/wireguard/${ifname}.sock`;

const fail = (message: string): Error => new Error(`wireguard/device: ${message}`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const exited = (c: ChildProcess): boolean => c.exitCode !== null || c.signalCode !== null;

/** What the kernel says when it has no WireGuard (this machine: `Unknown device type`). */
const NO_KERNEL_WG = /Unknown device type|not supported|No such device/i;

interface LinkDetails {
  ifalias?: string;
  linkinfo?: { info_kind?: string };
}

/**
 * This node's WireGuard interface, made in the daemon's own namespace (the host's). Kernel
 * WireGuard where `ip link add … type wireguard` works; else wireguard-go, the daemon's child,
 * started through `setpriv --pdeathsig TERM` so that it ends with the daemon however the
 * daemon ends (a kill -9 too): the tunnel lives exactly as long as the daemon that keys it, and
 * a restart makes it again with the same key and address. wireguard-go's UAPI socket directory is
 * shared by every namespace, so the name must be unique on the machine, not only in the namespace.
 */
export class WgDevice {
  readonly ifname: string;
  readonly #owner: string;
  readonly #onExit: () => void;
  #kind: WgKind | undefined;
  /** Set once the kernel refused the device type: no probe after that. */
  #noKernel = false;
  #child: ChildProcess | undefined;
  #stderr = '';

  /**
   * `owner` is written as the link's alias: a link of that name without it is someone else's.
   * `onExit` is called when wireguard-go ends without being asked to (its device is gone with it).
   */
  constructor(ifname: string, owner: string, onExit: () => void = () => {}) {
    checkIfname(ifname, 'wireguard/device: interface');
    this.ifname = ifname;
    this.#owner = owner;
    this.#onExit = onExit;
  }

  /** The kind of the device made, undefined while there is none. */
  get kind(): WgKind | undefined {
    return linkExists(this.ifname) ? this.#kind : undefined;
  }

  /** Makes the device, or takes the one this daemon already has; resolves with its kind. */
  async create(): Promise<WgKind> {
    if (linkExists(this.ifname) && (await this.#adopt())) return this.#kind!;
    this.#kind = undefined;
    if (!this.#noKernel) {
      try {
        await ipBatch([['link', 'add', 'dev', this.ifname, 'type', 'wireguard']]);
        this.#kind = 'kernel';
      } catch (err) {
        if (!NO_KERNEL_WG.test((err as Error).message)) throw fail(`${this.ifname}: ${(err as Error).message}`);
        this.#noKernel = true;
      }
    }
    if (this.#kind !== 'kernel') await this.#startUserspace();
    await ipBatch([['link', 'set', 'dev', this.ifname, 'alias', this.#owner]]);
    return this.#kind!;
  }

  /** Removes the device (and ends wireguard-go); nothing when there is none. */
  async remove(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child !== undefined && !exited(child)) {
      // wireguard-go removes its TUN device and UAPI socket on SIGTERM.
      child.kill('SIGTERM');
      for (let i = 0; i < 60 && !exited(child); i++) await sleep(50);
      if (!exited(child)) child.kill('SIGKILL');
    }
    if (linkExists(this.ifname)) await ipBatch([['link', 'del', 'dev', this.ifname]]);
    this.#kind = undefined;
  }

  /** An existing link of this name: ours to keep (true), ours but orphaned and removed (false), or someone else's (throws). */
  async #adopt(): Promise<boolean> {
    const [link] = await ipJson<LinkDetails[]>(['-d', 'link', 'show', 'dev', this.ifname]);
    if (link?.ifalias !== this.#owner) throw fail(`interface ${this.ifname} exists and is not this daemon's (alias ${JSON.stringify(link?.ifalias ?? '')}): pick another with --wg-ifname`);
    if (link.linkinfo?.info_kind === 'wireguard') {
      this.#kind = 'kernel';
      return true;
    }
    if (this.#child !== undefined && !exited(this.#child)) return true;
    // A TUN device no live child of ours serves: deleting it ends whatever wireguard-go held it.
    await ipBatch([['link', 'del', 'dev', this.ifname]]);
    return false;
  }

  /** Starts wireguard-go in the foreground and waits for its device and UAPI socket. */
  async #startUserspace(): Promise<void> {
    this.#stderr = '';
    const child = spawn(systemTool('setpriv'), ['--pdeathsig', 'TERM', '--', systemTool('wireguard-go'), '-f', this.ifname], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, LOG_LEVEL: 'error' },
    });
    child.stderr!.on('data', (d: Buffer) => (this.#stderr = (this.#stderr + d.toString()).slice(-2000)));
    child.on('error', (err) => (this.#stderr += err.message));
    child.once('exit', () => {
      if (this.#child === child) this.#onExit();
    });
    this.#child = child;
    this.#kind = 'wireguard-go';
    for (let i = 0; i < 200; i++) {
      if (exited(child)) throw fail(`wireguard-go -f ${this.ifname} exited (${child.exitCode ?? child.signalCode}): ${this.#stderr.trim() || 'no message'}`);
      if (linkExists(this.ifname) && existsSync(uapiSocket(this.ifname))) return;
      await sleep(25);
    }
    child.kill('SIGKILL');
    throw fail(`wireguard-go -f ${this.ifname} made no device and socket within 5 s: ${this.#stderr.trim() || 'no message'}`);
  }
}
