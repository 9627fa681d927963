import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { owned } from './ledger.js';
import { run } from './netns.js';

// Debian's podman 4.3 with netavark, run so that nothing of it reaches the machine's own podman
// or network: a "host" network namespace of the test's (netavark's bridges and iptables rules go
// there), storage of its own, and a private mount namespace in which a tmpfs covers /run
// (podman 4.3 has /run/containers/networks built in: netavark's aardvark-dns config, its pid file
// and IPAM; runc's state and the containers' namespaces are there too) and the test's
// resolv.conf covers /etc/resolv.conf, so that the
// host resolvers tsnet-dns falls back to, as aardvark-dns does, are the test's upstream on loopback.
const NETAVARK = '/usr/lib/podman/netavark';
const TSNET_DNS = new URL('../../bin/tsnet-dns', import.meta.url).pathname;
const BUSYBOX = '/bin/busybox';

export interface Podman {
  /** The tag every name of this setup carries (bridges, networks, namespaces). */
  tag: string;
  /** The test's "host" namespace: netavark's bridges and firewall, the upstream. */
  host: string;
  /** `podman ARGS` in the setup; rejects with podman's stderr. */
  podman(...args: string[]): Promise<string>;
  /** CMD in the setup's mount namespace and the network namespace at `netns` (a path). */
  inNet(netns: string, ...cmd: string[]): Promise<string>;
  /** CMD in the host namespace (and the setup's mount namespace). */
  inHost(...cmd: string[]): Promise<string>;
  /**
   * A running container's network namespace, through its process: its SandboxKey under /run/netns
   * is a mount in the private mount namespace, which nsenter opens before it enters that.
   */
  netnsOf(container: string): Promise<string>;
  /**
   * A bridge network written as podman's own JSON, on a bridge made here with a MAC of its own
   * (a bridge netavark makes takes its ports' lowest MAC and changes it when that container
   * leaves, so the others' ARP entries for the gateway point nowhere for up to 45 s; podman 4.3's
   * `network create` has no --interface-name to name a bridge made beforehand).
   */
  network(name: string, subnet24: string, options?: { dns?: boolean }): Promise<{ gateway: string; bridge: string }>;
  /** Imports a root file system (a directory) as image `name`. */
  importDir(dir: string, name: string): Promise<void>;
}

const hex = (n: number): string => randomBytes(n).toString('hex');

/** A busybox-static root file system in a new temporary directory: sh, sleep, nslookup, ping, nc, wget. */
export function busyboxRoot(t: ExecutionContext): string {
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing (bash .ci/run installs busybox-static)`);
  const dir = mkdtempSync(join(tmpdir(), 'tsnet-rootfs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'bin'));
  mkdirSync(join(dir, 'etc'));
  copyFileSync(BUSYBOX, join(dir, 'bin/busybox'));
  // As in any base image: root's home is /root (npm's cache), and names resolve through resolv.conf.
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\n');
  for (const cmd of ['sh', 'sleep', 'nslookup', 'ping', 'nc', 'wget', 'cat', 'ls', 'hostname', 'ip']) symlinkSync('busybox', join(dir, 'bin', cmd));
  return dir;
}

/**
 * A root file system with this machine's own node and npm (and the libraries node links) over
 * busybox: a base for the Dockerfile's `--build-arg BASE` with no registry.
 */
export async function nodeRoot(t: ExecutionContext): Promise<string> {
  const dir = busyboxRoot(t);
  const node = realpathSync(process.execPath);
  const { stdout } = await run('ldd', [node]);
  const libraries = [...stdout.matchAll(/(\/\S+\.so[.\d]*)/g)].map((m) => m[1]!);
  for (const file of [node, ...libraries]) {
    mkdirSync(join(dir, dirname(file)), { recursive: true });
    copyFileSync(file, join(dir, file));
  }
  mkdirSync(join(dir, 'usr/bin'), { recursive: true });
  if (node !== '/usr/bin/node') symlinkSync(node, join(dir, 'usr/bin/node'));
  const npm = join(dirname(dirname(node)), 'lib/node_modules/npm');
  if (!existsSync(npm)) throw new Error(`npm is not at ${npm}`);
  mkdirSync(join(dir, dirname(npm)), { recursive: true });
  await run('cp', ['-a', npm, join(dir, dirname(npm))]);
  symlinkSync(join(npm, 'bin/npm-cli.js'), join(dir, 'usr/bin/npm'));
  symlinkSync('/bin/busybox', join(dir, 'usr/bin/env'));
  mkdirSync(join(dir, 'tmp'));
  mkdirSync(join(dir, 'root'));
  return dir;
}

/**
 * A podman setup for one test (see above), taken apart when the test ends, pass or fail. Storage
 * is vfs unless told (no mounts; overlay for builds, where vfs copies every layer whole).
 */
export async function podmanSetup(t: ExecutionContext, upstream: string, options: { storage?: 'vfs' | 'overlay' } = {}): Promise<Podman> {
  for (const [tool, pkg] of [['/usr/bin/podman', 'podman'], [NETAVARK, 'netavark'], ['/usr/sbin/runc', 'runc']] as const) {
    if (!existsSync(tool)) throw new Error(`${tool} is missing (bash .ci/run installs ${pkg})`);
  }
  const tag = hex(3);
  const host = `tspm${tag}-h`;
  owned(t.title, `tspm${tag}`);
  const dir = mkdtempSync(join(tmpdir(), 'tsnet-podman-'));
  const helpers = join(dir, 'helpers');
  const netConfig = join(dir, 'networks');
  for (const d of [helpers, netConfig, join(dir, 'root'), join(dir, 'runroot'), join(dir, 'tmp')]) mkdirSync(d);
  // podman looks for `aardvark-dns` beside netavark in its helper directories.
  symlinkSync(NETAVARK, join(helpers, 'netavark'));
  symlinkSync(TSNET_DNS, join(helpers, 'aardvark-dns'));
  writeFileSync(join(dir, 'resolv.conf'), `nameserver ${upstream}\n`);
  // This machine's limits and cgroups: root without CAP_SYS_RESOURCE cannot raise RLIMIT_NPROC
  // or NOFILE to podman's defaults, and crun refuses the hybrid cgroup layout that runc takes.
  writeFileSync(
    join(dir, 'containers.conf'),
    [
      '[containers]',
      'default_ulimits = ["nofile=1024:4096", "nproc=4096:4096"]',
      '[engine]',
      `helper_binaries_dir = ["${helpers}"]`,
      'runtime = "runc"',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      '[network]',
      'network_backend = "netavark"',
      `network_config_dir = "${netConfig}"`,
      '',
    ].join('\n'),
  );

  await run('ip', ['netns', 'add', host]);
  await run('ip', ['-n', host, 'link', 'set', 'lo', 'up']);
  // The mount namespace lives as long as this process: everything podman mounts (the containers'
  // namespaces under /run/netns, shm, layers) is in it and goes with it.
  const holder: ChildProcess = spawn(
    'unshare',
    ['-m', '--propagation', 'private', 'sh', '-c', `mount --bind ${dir}/resolv.conf /etc/resolv.conf && mount -t tmpfs tsnet-test /run && echo ready && exec sleep 100000`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const mnt = await new Promise<string>((resolve, reject) => {
    holder.once('exit', (code) => reject(new Error(`the mount namespace for podman did not come up (exit ${code})`)));
    holder.stdout!.once('data', () => resolve(`/proc/${holder.pid}/ns/mnt`));
  });
  const env = { ...process.env, CONTAINERS_CONF: join(dir, 'containers.conf') };
  const inNet = async (netns: string, ...cmd: string[]): Promise<string> => {
    try {
      return (await run('nsenter', [`--mount=${mnt}`, `--net=${netns}`, ...cmd], { env, timeout: 120_000, maxBuffer: 64 << 20 })).stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`${cmd.slice(0, 3).join(' ')}…: ${e.stderr?.trim() || e.message}`);
    }
  };
  const inHost = (...cmd: string[]) => inNet(`/run/netns/${host}`, ...cmd);
  const podman = (...args: string[]) => inHost('podman', '--root', join(dir, 'root'), '--runroot', join(dir, 'runroot'), '--tmpdir', join(dir, 'tmp'), '--storage-driver', options.storage ?? 'vfs', ...args);

  t.teardown(async () => {
    await podman('rm', '--all', '--force', '--time', '0').catch(() => {});
    // What podman started (conmon, tsnet-dns) and any container left: every process in the mount namespace.
    const ours = readlinkSync(mnt);
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        if (readlinkSync(`/proc/${pid}/ns/mnt`) === ours) process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone, or not ours to read
      }
    }
    await run('ip', ['netns', 'del', host]).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });

  return {
    tag,
    host,
    podman,
    inNet,
    inHost,
    netnsOf: async (container) => `/proc/${(await podman('inspect', '--format', '{{.State.Pid}}', container)).trim()}/ns/net`,
    importDir: async (root, name) => {
      const tar = join(dir, `${hex(4)}.tar`);
      await run('tar', ['-C', root, '-cf', tar, '.']);
      await podman('import', '--quiet', tar, name);
      rmSync(tar);
    },
    network: async (name, subnet24, options = {}) => {
      const bridge = `tspm${tag}${readdirSync(netConfig).length}`;
      const prefix = subnet24.replace(/\.0\/24$/, '');
      const gateway = `${prefix}.1`;
      await inHost('ip', 'link', 'add', bridge, 'address', `02:00:5e:${hex(1)}:${hex(1)}:01`, 'type', 'bridge');
      await inHost('ip', 'addr', 'add', `${gateway}/24`, 'dev', bridge);
      await inHost('ip', 'link', 'set', bridge, 'up');
      writeFileSync(
        join(netConfig, `${name}.json`),
        JSON.stringify({
          name,
          id: hex(32),
          driver: 'bridge',
          network_interface: bridge,
          created: new Date().toISOString(),
          subnets: [{ subnet: subnet24, gateway }],
          ipv6_enabled: false,
          internal: false,
          dns_enabled: options.dns ?? true,
          ipam_options: { driver: 'host-local' },
        }),
      );
      return { gateway, bridge };
    },
  };
}
