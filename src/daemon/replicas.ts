import { Socket } from 'node:net';
import { namedNetns } from '../netns/netns.js';
import { familyOf, socketInNetns } from '../netns/socket-in-netns.js';
import type { Logger } from 'pino';
import { runTool } from '../net/exec/tool-runner.js';
import { systemTool } from '../net/tools.js';
import { conflict } from './errors.js';
import type { DaemonCore } from './core.js';
import type { ServiceManager } from './service-manager.js';
import { killAllIn, ReplicaProcess } from './replica-process.js';
import { place } from '../cluster/placement.js';
import { INGRESS_NETWORK, INGRESS_ROLE, INGRESS_SANDBOX, meshServices } from './ingress.js';

const replicaName = (svc: string, slot: number): string => `${svc}.${slot}`;

/**
 * Whether `ip:port` accepts a TCP connection within a second, asked from inside the task's own
 * namespace (as Docker runs a health check inside the container): an overlay's tasks are out
 * of the host's reach, a bridge's are not, and both answer from within.
 */
function tcpAlive(netns: string, ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    let c: Socket;
    try {
      c = new Socket({ fd: socketInNetns(namedNetns(netns), 'tcp', familyOf(ip)) });
    } catch {
      return resolve(false);
    }
    const timer = setTimeout(() => done(false), 1000);
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      c.destroy();
      resolve(ok);
    };
    c.once('connect', () => done(true));
    c.once('error', () => done(false));
    c.connect({ host: ip, port });
  });
}

async function commandSucceeds(netns: string, command: string): Promise<boolean> {
  return (await runTool(systemTool('ip'), ['netns', 'exec', netns, 'sh', '-c', command], { timeoutMs: 5000 })).code === 0;
}

/** One service's health checks: the next round is due only once the last one has finished. */
interface Watch {
  timer?: NodeJS.Timeout;
  stopped: boolean;
}

/**
 * Runs the replicas tsnet owns: a sandbox per replica (`<svc>.<n>`) on the service's network
 * running the command, supervised (restarted when it exits, adopted after a daemon restart),
 * health checks that move tasks in and out of DNS and the VIP, and rolling scale (new replicas
 * join when healthy; removed ones are drained first). Scale requests run one at a time.
 */
export class Replicas {
  readonly #procs = new Map<string, ReplicaProcess>();
  readonly #watches = new Map<string, Watch>();
  #queue: Promise<unknown> = Promise.resolve();
  #pending = false;

  constructor(
    readonly m: DaemonCore & { readonly services: ServiceManager },
    readonly logger: Logger,
    /** The nodes replicas may be placed on (this one alone without a cluster). */
    readonly readyNodes: () => readonly string[],
  ) {}

  #serial(fn: () => Promise<void>): Promise<void> {
    const next = this.#queue.then(fn);
    this.#queue = next.catch(() => {});
    return next;
  }

  /** Records `count` for `svc` and brings this node's share to it; after every earlier scale has finished. */
  scale(svcName: string, count: number, drainMs = 1000): Promise<void> {
    return this.#serial(async () => {
      await this.m.services.setReplicaCount(svcName, count);
      await this.#converge(svcName, drainMs);
      this.#watch(svcName);
    });
  }

  /** The cluster changed (a service, a task, a node): every service's share on this node is placed again, once. */
  changed(): void {
    if (this.#pending) return;
    this.#pending = true;
    void this.#serial(async () => {
      this.#pending = false;
      await this.#convergeAll(1000);
    }).catch((err: Error) => this.logger.error({ err: err.message }, 'replicas: placing failed; the next change tries again'));
  }

  /**
   * Removes a service and its replicas: the service (VIPs, published ports) first, so that a
   * crash after it leaves only replica sandboxes without a service, which `resume` removes.
   */
  removeService(svcName: string): Promise<void> {
    return this.#serial(async () => {
      const svc = this.m.services.service(svcName);
      this.#unwatch(svc.name);
      await this.m.services.remove(svc.name);
      await this.#removeOrphans();
    });
  }

  /**
   * After a daemon restart: the replicas still running adopted (their tasks were written again
   * under the new lease), this node's share of every service placed, health checks started,
   * and the replicas of a service whose removal was cut short removed.
   */
  resume(): Promise<void> {
    return this.#serial(() => this.#convergeAll(0));
  }

  async #convergeAll(drainMs: number): Promise<void> {
    await this.#removeOrphans();
    await this.#ingressSandbox();
    for (const svc of this.m.services.services) {
      if (svc.replicas === undefined) continue;
      try {
        await this.#converge(svc.name, drainMs);
        this.#watch(svc.name);
      } catch (err) {
        this.logger.error({ service: svc.name, err: (err as Error).message }, 'replicas could not be placed');
      }
    }
  }

  /** Replica sandboxes of services that are gone. */
  async #removeOrphans(): Promise<void> {
    const names = new Set(this.m.services.services.map((s) => s.name));
    for (const sb of this.m.state.sandboxes.filter((s) => s.replicaOf !== undefined && s.replicaOf !== INGRESS_ROLE && !names.has(s.replicaOf))) {
      this.#unwatch(sb.replicaOf!);
      await this.#stop(sb.name);
      await this.m.removeSandbox(sb.name).catch((err: Error) => this.logger.error({ sandbox: sb.name, err: err.message }, 'a replica of a removed service could not be removed'));
    }
  }

  /** This node's ingress sandbox: there while a service publishes through the mesh, gone after. */
  async #ingressSandbox(): Promise<void> {
    const want = meshServices(this.m.state.services ?? [], this.m.state.networks).length > 0 && this.m.state.networks.some((n) => n.name === INGRESS_NETWORK);
    const have = this.m.state.sandboxes.find((s) => s.name === INGRESS_SANDBOX);
    if (want && have === undefined) await this.m.createSandbox({ name: INGRESS_SANDBOX, networks: [{ network: INGRESS_NETWORK }] }, INGRESS_ROLE);
    if (!want && have?.replicaOf === INGRESS_ROLE) await this.m.removeSandbox(have.name);
  }

  #unwatch(svcName: string): void {
    const w = this.#watches.get(svcName);
    if (w === undefined) return;
    w.stopped = true;
    clearTimeout(w.timer);
    this.#watches.delete(svcName);
  }

  /**
   * This node's share of the service's slots, as placement over the ready nodes gives it: each
   * slot it is given gets a sandbox (`<svc>.<slot>`), a claimed task and its process; its tasks
   * placement calls surplus are drained and removed, with replicas whose slot it no longer holds.
   */
  async #converge(svcName: string, drainMs: number): Promise<void> {
    const svc = this.m.services.service(svcName);
    const spec = svc.replicas;
    if (spec === undefined) throw new Error(`service ${svc.name} has no replicas of tsnet's (add tasks instead)`);
    const me = this.m.node;
    // A service on a local network is its node's alone (no other node sees it): every slot is placed here.
    const local = this.m.state.networks.find((n) => n.id === svc.networkId)?.scope === 'local';
    const plan = place({ count: spec.count, nodes: local ? [me] : this.readyNodes(), tasks: this.m.placedTasks(svc.id) });
    for (const slot of plan.claims.get(me) ?? []) {
      const name = replicaName(svc.name, slot);
      const existing = this.m.state.sandboxes.find((s) => s.name === name);
      // A task of a service published through the mesh is on the ingress network too, where the ingress sandboxes reach it.
      const mesh = meshServices([svc], this.m.state.networks).length > 0;
      if (existing === undefined) await this.m.createSandbox({ name, networks: [{ network: svc.network }, ...(mesh ? [{ network: INGRESS_NETWORK }] : [])] }, svc.name);
      else if (existing.replicaOf !== svc.name) throw conflict(`sandbox ${name} is not a replica of service ${svc.name}: remove it to scale`);
      try {
        await this.m.services.addTask(svc.name, { sandbox: name, healthy: spec.healthCmd === undefined && spec.healthTcp === undefined }, slot);
      } catch (err) {
        // Another node took the slot first: its replica stands, this one goes.
        this.logger.info({ service: svc.name, slot, err: (err as Error).message }, 'replica slot taken elsewhere');
        await this.m.removeSandbox(name);
      }
    }
    // This node's slot tasks after its claims: each runs its process; those over the count or surplus go.
    const held = this.m.services.service(svc.name).tasks.filter((t) => t.node === me && t.slot !== undefined && t.sandbox !== undefined);
    for (const t of held) await this.#run(t.sandbox!, spec.command);
    const surplus = new Set(plan.surplus.filter((t) => t.node === me).map((t) => t.id));
    const keep = new Set(held.filter((t) => t.slot! <= spec.count && !surplus.has(t.id)).map((t) => t.sandbox!));
    const extra = this.m.state.sandboxes.filter((s) => s.replicaOf === svc.name && !keep.has(s.name));
    if (extra.length === 0) return;
    for (const sb of extra) {
      const task = held.find((t) => t.sandbox === sb.name);
      if (task !== undefined) await this.m.services.updateTask(svc.name, task.id, { draining: true });
    }
    if (drainMs > 0) await new Promise((r) => setTimeout(r, drainMs));
    for (const sb of extra) {
      await this.#stop(sb.name);
      await this.m.removeSandbox(sb.name);
    }
  }

  async #run(sandbox: string, command: string): Promise<void> {
    if (this.#procs.has(sandbox)) return;
    const proc = new ReplicaProcess(this.m.sandbox(sandbox).netns!, command, this.logger.child({ sandbox }));
    this.#procs.set(sandbox, proc);
    await proc.start();
  }

  /** Stops a replica's supervision and kills what runs in its namespace, supervised or not (one a crash left). */
  async #stop(sandbox: string): Promise<void> {
    const proc = this.#procs.get(sandbox);
    this.#procs.delete(sandbox);
    await proc?.stop();
    const netns = this.m.state.sandboxes.find((s) => s.name === sandbox)?.netns;
    if (netns !== undefined) await killAllIn(netns);
  }

  /** Health checks of this node's tasks of a service with a health command, one round after another (never two at once). */
  #watch(svcName: string): void {
    const spec = this.m.services.service(svcName).replicas;
    if ((spec?.healthCmd === undefined && spec?.healthTcp === undefined) || this.#watches.has(svcName)) return;
    const w: Watch = { stopped: false };
    const round = async (): Promise<void> => {
      if (!this.m.services.services.some((s) => s.name === svcName)) w.stopped = true;
      if (w.stopped) return;
      await this.#check(svcName).catch((err: Error) => this.logger.warn({ service: svcName, err: err.message }, 'health check failed to run'));
      if (!w.stopped) w.timer = setTimeout(() => void round(), spec.healthInterval ?? 1000).unref();
    };
    w.timer = setTimeout(() => void round(), spec.healthInterval ?? 1000).unref();
    this.#watches.set(svcName, w);
  }

  async #check(svcName: string): Promise<void> {
    const svc = this.m.services.service(svcName);
    for (const t of svc.tasks) {
      if (t.sandbox === undefined || t.draining || t.node !== this.m.node) continue;
      const netns = this.m.sandbox(t.sandbox).netns!;
      const ok = svc.replicas!.healthTcp !== undefined ? await tcpAlive(netns, t.ipv4, svc.replicas!.healthTcp) : await commandSucceeds(netns, svc.replicas!.healthCmd!);
      if (ok !== t.healthy) {
        this.logger.info({ service: svcName, task: t.id, healthy: ok }, 'task health changed');
        await this.m.services.updateTask(svcName, t.id, { healthy: ok });
      }
    }
  }
}
