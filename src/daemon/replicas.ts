import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import type { Logger } from 'pino';
import { systemTool } from '../net/tools.js';
import { conflict } from './errors.js';
import type { DaemonCore } from './core.js';
import type { ServiceManager } from './service-manager.js';
import { killAllIn, ReplicaProcess } from './replica-process.js';
import type { SandboxRecord } from './state.js';

const replicaName = (svc: string, n: number): string => `${svc}.${n}`;
/** The replica number of sandbox `sb` of service `svc` (`web.3` → 3), or undefined when it is none of its replicas. */
const replicaNumber = (svc: string, sb: SandboxRecord): number | undefined => {
  const m = /^(\d+)$/.exec(sb.replicaOf === svc ? sb.name.slice(svc.length + 1) : '');
  return m === null ? undefined : Number(m[1]);
};

/** Whether `ip:port` accepts a TCP connection within a second (from the host, which routes to every bridge). */
function tcpAlive(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect({ host: ip, port, timeout: 1000 });
    const done = (ok: boolean): void => {
      c.destroy();
      resolve(ok);
    };
    c.once('connect', () => done(true));
    c.once('timeout', () => done(false));
    c.once('error', () => done(false));
  });
}

function commandSucceeds(netns: string, command: string): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const c = spawn(systemTool('ip'), ['netns', 'exec', netns, 'sh', '-c', command], { stdio: 'ignore' });
    const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
    c.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code === 0);
    });
  });
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

  constructor(
    readonly m: DaemonCore & { readonly services: ServiceManager },
    readonly logger: Logger,
  ) {}

  /** Brings `svc` to `count` replicas and records the count; after every earlier scale has finished. */
  scale(svcName: string, count: number, drainMs = 1000): Promise<void> {
    const next = this.#queue.then(async () => {
      await this.#converge(svcName, count, drainMs);
      await this.m.services.setReplicaCount(svcName, count);
      this.#watch(svcName);
    });
    this.#queue = next.catch(() => {});
    return next;
  }

  /**
   * Removes a service and its replicas: the service (VIPs, published ports) first, so that a
   * crash after it leaves only replica sandboxes without a service, which `resume` removes.
   */
  removeService(svcName: string): Promise<void> {
    const next = this.#queue.then(async () => {
      const svc = this.m.services.service(svcName);
      this.#unwatch(svc.name);
      await this.m.services.remove(svc.name);
      for (const sb of this.m.state.sandboxes.filter((s) => s.replicaOf === svc.name)) {
        await this.#stop(sb.name);
        await this.m.removeSandbox(sb.name);
      }
    });
    this.#queue = next.catch(() => {});
    return next;
  }

  /**
   * After a daemon restart: every service back at the count it last recorded (a scale that was
   * in flight is undone), the replicas still running adopted, health checks started, and the
   * replicas of a service whose removal was cut short removed.
   */
  async resume(): Promise<void> {
    const names = new Set(this.m.services.services.map((s) => s.name));
    for (const sb of this.m.state.sandboxes.filter((s) => s.replicaOf !== undefined && !names.has(s.replicaOf))) {
      await this.#stop(sb.name);
      await this.m.removeSandbox(sb.name).catch((err: Error) => this.logger.error({ sandbox: sb.name, err: err.message }, 'resume: a replica of a removed service could not be removed'));
    }
    for (const svc of this.m.services.services) {
      if (svc.replicas === undefined) continue;
      await this.scale(svc.name, svc.replicas.count, 0).catch((err: Error) => this.logger.error({ service: svc.name, err: err.message }, 'resume: replicas could not be brought back'));
    }
  }

  #unwatch(svcName: string): void {
    const w = this.#watches.get(svcName);
    if (w === undefined) return;
    w.stopped = true;
    clearTimeout(w.timer);
    this.#watches.delete(svcName);
  }

  /** Replicas 1..count exist, each with its task and its process; the others are drained and removed. */
  async #converge(svcName: string, count: number, drainMs: number): Promise<void> {
    const svc = this.m.services.service(svcName);
    const spec = svc.replicas;
    if (spec === undefined) throw new Error(`service ${svc.name} has no replicas of tsnet's (add tasks instead)`);
    for (let n = 1; n <= count; n++) {
      const name = replicaName(svc.name, n);
      const existing = this.m.state.sandboxes.find((s) => s.name === name);
      if (existing === undefined) await this.m.createSandbox({ name, networks: [{ network: svc.network }] }, svc.name);
      else if (existing.replicaOf !== svc.name) throw conflict(`sandbox ${name} is not a replica of service ${svc.name}: remove it to scale`);
      if (!this.m.services.service(svc.name).tasks.some((t) => t.sandbox === name)) {
        await this.m.services.addTask(svc.name, { sandbox: name, healthy: spec.healthCmd === undefined && spec.healthTcp === undefined });
      }
      await this.#run(name, spec.command);
    }
    const extra = this.m.state.sandboxes.filter((s) => (replicaNumber(svc.name, s) ?? 0) > count).map((s) => s.name);
    if (extra.length === 0) return;
    for (const name of extra) {
      const task = this.m.services.service(svc.name).tasks.find((t) => t.sandbox === name);
      if (task !== undefined) await this.m.services.updateTask(svc.name, task.id, { draining: true });
    }
    await new Promise((r) => setTimeout(r, drainMs));
    for (const name of extra) {
      await this.#stop(name);
      await this.m.removeSandbox(name);
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

  /** Health checks of a service with a health command, one round after another (never two at once). */
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
      if (t.sandbox === undefined || t.draining) continue;
      const ok = svc.replicas!.healthTcp !== undefined ? await tcpAlive(t.ipv4, svc.replicas!.healthTcp) : await commandSucceeds(this.m.sandbox(t.sandbox).netns!, svc.replicas!.healthCmd!);
      if (ok !== t.healthy) {
        this.logger.info({ service: svcName, task: t.id, healthy: ok }, 'task health changed');
        await this.m.services.updateTask(svcName, t.id, { healthy: ok });
      }
    }
  }
}
