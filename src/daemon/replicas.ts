import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import type { Logger } from 'pino';
import { systemTool } from '../net/tools.js';
import type { Manager } from './manager.js';
import type { ServiceRecord } from './services.js';

const replicaName = (svc: string, n: number): string => `${svc}.${n}`;

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

/**
 * Runs the replicas tsnet owns: a sandbox per replica on the service's network running the
 * command, health checks that move tasks in and out of DNS and the VIP, and rolling scale
 * (new replicas join when healthy; removed ones are drained first). Processes are children of
 * the daemon; after a restart `resume()` starts them again from the state.
 */
export class Replicas {
  readonly #procs = new Map<string, ChildProcess>();
  readonly #checks = new Map<string, NodeJS.Timeout>();

  constructor(
    readonly m: Manager,
    readonly logger: Logger,
  ) {}

  /** Brings `svc` to `count` replicas. */
  async scale(svcName: string, count: number, drainMs = 1000): Promise<void> {
    const svc = this.m.services.service(svcName);
    const spec = svc.replicas;
    if (spec === undefined) throw new Error(`service ${svc.name} has no replicas of tsnet's (add tasks instead)`);
    const have = svc.tasks.filter((t) => t.sandbox?.startsWith(`${svc.name}.`)).length;
    for (let n = have + 1; n <= count; n++) {
      const name = replicaName(svc.name, n);
      await this.m.createSandbox({ name, networks: [{ network: svc.network }] });
      const updated = await this.m.services.addTask(svc.name, { sandbox: name, healthy: spec.healthCmd === undefined && spec.healthTcp === undefined });
      this.#run(updated, name);
    }
    for (let n = have; n > count; n--) {
      const name = replicaName(svc.name, n);
      const task = this.m.services.service(svc.name).tasks.find((t) => t.sandbox === name);
      if (task !== undefined) await this.m.services.updateTask(svc.name, task.id, { draining: true });
      await new Promise((r) => setTimeout(r, drainMs));
      this.#stop(name);
      await this.m.removeSandbox(name);
    }
    await this.m.services.setReplicaCount(svc.name, count);
    this.#watch(this.m.services.service(svc.name));
  }

  /** After a daemon restart: the processes and health checks of every replica in the state. */
  resume(): void {
    for (const svc of this.m.services.services) {
      for (const t of svc.tasks) if (t.sandbox?.startsWith(`${svc.name}.`) && svc.replicas !== undefined) this.#run(svc, t.sandbox);
      this.#watch(svc);
    }
  }

  stopAll(svcName?: string): void {
    for (const [name] of this.#procs) if (svcName === undefined || name.startsWith(`${svcName}.`)) this.#stop(name);
    for (const [name, timer] of this.#checks) {
      if (svcName !== undefined && name !== svcName) continue;
      clearInterval(timer);
      this.#checks.delete(name);
    }
  }

  #run(svc: ServiceRecord, sandbox: string): void {
    if (this.#procs.has(sandbox) || svc.replicas === undefined) return;
    const ns = this.m.sandbox(sandbox).netns!;
    const child = spawn(systemTool('ip'), ['netns', 'exec', ns, 'sh', '-c', svc.replicas.command], { stdio: 'ignore', detached: true });
    child.on('exit', (code) => {
      this.#procs.delete(sandbox);
      this.logger.info({ sandbox, code }, 'replica command exited');
    });
    this.#procs.set(sandbox, child);
  }

  #stop(sandbox: string): void {
    const child = this.#procs.get(sandbox);
    if (child?.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    this.#procs.delete(sandbox);
  }

  /** One timer per service with a health command: each task's result decides its `healthy`. */
  #watch(svc: ServiceRecord): void {
    const spec = svc.replicas;
    if ((spec?.healthCmd === undefined && spec?.healthTcp === undefined) || this.#checks.has(svc.name)) return;
    const timer = setInterval(() => void this.#check(svc.name).catch((err: Error) => this.logger.warn({ service: svc.name, err: err.message }, 'health check failed to run')), spec.healthInterval ?? 1000);
    timer.unref();
    this.#checks.set(svc.name, timer);
  }

  #commandSucceeds(netns: string, command: string): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const c = spawn(systemTool('ip'), ['netns', 'exec', netns, 'sh', '-c', command], { stdio: 'ignore' });
      const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
      c.on('exit', (code) => {
        clearTimeout(timer);
        resolve(code === 0);
      });
    });
  }

  async #check(svcName: string): Promise<void> {
    const svc = this.m.services.service(svcName);
    for (const t of svc.tasks) {
      if (t.sandbox === undefined || t.draining) continue;
      const ok = svc.replicas!.healthTcp !== undefined ? await tcpAlive(t.ipv4, svc.replicas!.healthTcp) : await this.#commandSucceeds(this.m.sandbox(t.sandbox).netns!, svc.replicas!.healthCmd!);
      if (ok !== t.healthy) {
        this.logger.info({ service: svcName, task: t.id, healthy: ok }, 'task health changed');
        await this.m.services.updateTask(svcName, t.id, { healthy: ok });
      }
    }
  }
}
