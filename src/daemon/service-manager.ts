import { randomBytes } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { allocateAddress } from '../net/ipam/ipam.js';
import type { VipBackend } from '../net/lb/backend.js';
import { parseServicePublish } from '../net/ports/spec.js';
import { badRequest, conflict, notFound } from './errors.js';
import type { DaemonCore } from './core.js';
import { usedAddresses } from './plan.js';
import { parseServicePort, vipServicesOn, type ServiceCreate, type ServiceRecord, type TaskAdd, type TaskChange } from './services.js';
import type { SandboxRecord } from './state.js';
import { addressKey, taskKey } from '../cluster/keys.js';
import type { TaskObject } from '../cluster/objects.js';
import { slotTaskId } from '../cluster/placement.js';
import { serviceDeletes, serviceNameFree, servicePuts } from './cluster-writes.js';

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;
/** Health checks further apart than a day, or closer than this (a fork each time), are refused. */
export const MIN_HEALTH_INTERVAL_MS = 100;
const MAX_HEALTH_INTERVAL_MS = 86_400_000;

/**
 * Services: a name (VIP or DNS round robin) over tasks. Changes go through the manager's queue
 * and store like every other; the VIP dataplane is an nftables table inside each sandbox on the
 * service's network (nft VIP backend; IPVS, where the kernel has it, is src/net/lb/ipvs.ts).
 */
export class ServiceManager {
  constructor(readonly m: DaemonCore) {}

  get services(): readonly ServiceRecord[] {
    return this.m.state.services ?? [];
  }

  service(ref: string): ServiceRecord {
    const s = this.services.find((x) => x.name === ref || x.id === ref) ?? this.services.find((x) => ref.length >= 3 && x.id.startsWith(ref));
    if (s === undefined) throw notFound(`service ${ref} not found`);
    return s;
  }

  create(req: ServiceCreate): Promise<ServiceRecord> {
    return this.m.serial(async () => {
      if (typeof req.name !== 'string' || !NAME.test(req.name)) throw badRequest(`invalid service name ${JSON.stringify(req.name)}`);
      if (this.services.some((s) => s.name === req.name)) throw conflict(`service ${req.name} already exists`);
      const net = this.m.network(req.network);
      if (net.ipam === null || !net.dns) throw badRequest(`network ${net.name} has no names: services need a user-defined network`);
      const mode = req.endpointMode ?? 'vip';
      if (mode !== 'vip' && mode !== 'dnsrr') throw badRequest(`endpoint mode ${JSON.stringify(mode)} is not vip or dnsrr`);
      let ports;
      try {
        ports = (req.ports ?? []).map(parseServicePort);
      } catch (err) {
        throw badRequest((err as Error).message);
      }
      const svc: ServiceRecord = { id: randomBytes(12).toString('hex'), name: req.name, network: net.name, networkId: net.id, mode, ports, tasks: [], created: new Date().toISOString() };
      if (req.replicas !== undefined) {
        const { count, command, healthCmd, healthTcp, healthInterval } = req.replicas;
        if (typeof command !== 'string' || command.trim() === '') throw badRequest('replicas need a command to run');
        if (healthCmd !== undefined && healthTcp !== undefined) throw badRequest('give --health-cmd or --health-tcp, not both');
        if (healthInterval !== undefined && (!Number.isInteger(healthInterval) || healthInterval < MIN_HEALTH_INTERVAL_MS || healthInterval > MAX_HEALTH_INTERVAL_MS)) {
          throw badRequest(`Replicas.HealthInterval ${healthInterval}: milliseconds from ${MIN_HEALTH_INTERVAL_MS} to ${MAX_HEALTH_INTERVAL_MS}`);
        }
        svc.replicas = {
          // The count asked for is the service's from the start: every node places its share of it.
          count,
          command,
          ...(healthCmd === undefined ? {} : { healthCmd }),
          ...(healthTcp === undefined ? {} : { healthTcp }),
          ...(healthInterval === undefined ? {} : { healthInterval }),
        };
      }
      if (req.publish !== undefined && req.publish.length > 0) {
        let wanted;
        try {
          wanted = req.publish.map(parseServicePublish);
        } catch (err) {
          throw badRequest((err as Error).message);
        }
        // An overlay's tasks are reached through the routing mesh (every node's ingress sandbox) unless mode=host.
        if (net.driver === 'overlay' && wanted.some((p) => p.mode !== 'host')) await this.m.ingressNetwork();
        if (net.driver !== 'overlay' && wanted.some((p) => p.mode === 'host')) throw badRequest('--publish mode=host is for services on an overlay network (a bridge service publishes on its host already)');
        svc.publish = await this.m.reserveHostPorts(wanted);
        if (net.driver === 'overlay') this.m.adoptOverlayPorts(svc.publish);
      }
      try {
        if (mode === 'vip') {
          const planned = allocateAddress({ network: net.name, subnet: net.ipam.subnet, gateway: net.ipam.gateway }, usedAddresses(this.m.state, net, this.m.takenElsewhere));
          svc.vip = await this.m.claimAddress(net, planned, `vip of service ${svc.name}`, false);
        }
        const { tasks: _tasks, ...stored } = svc;
        await this.m.applyServices([...this.services, svc], svc.network, async () => {
          if (!(await this.m.write([serviceNameFree(stored)], servicePuts(stored)))) throw conflict(`service ${req.name} already exists`);
        });
      } catch (err) {
        this.m.releaseHostPorts(svc.publish ?? []);
        if (svc.vip !== undefined && net.scope === 'swarm') await this.m.write([], [{ op: 'delete', key: addressKey(net.id, svc.vip) }]).catch(() => {});
        throw err;
      }
      return this.service(svc.id);
    });
  }

  /** Records how many replicas the cluster keeps; every node then places its share. */
  setReplicaCount(ref: string, count: number): Promise<void> {
    return this.m.serial(async () => {
      const { tasks: _tasks, ...svc } = this.service(ref);
      if (svc.replicas === undefined || svc.replicas.count === count) return;
      await this.m.write([], servicePuts({ ...svc, replicas: { ...svc.replicas, count } }));
    });
  }

  remove(ref: string): Promise<void> {
    return this.m.serial(async () => {
      const svc = this.service(ref);
      const networkId = this.m.state.networks.find((n) => n.name === svc.network && n.scope === 'swarm')?.id;
      const { tasks: _tasks, ...stored } = svc;
      await this.m.applyServices(this.services.filter((s) => s !== svc), svc.network, async () => {
        await this.m.write([], await serviceDeletes(this.m.store, stored, networkId));
        await this.m.writeTasks([], this.#own(svc).map((t) => taskKey(svc.id, t.id)));
      });
      this.m.releaseHostPorts(svc.publish ?? []);
    });
  }

  /** A task of a sandbox on this node (or of an address a runtime manages); `slot` marks a replica's, whose key is claimed, not overwritten. */
  addTask(ref: string, req: TaskAdd, slot?: number): Promise<ServiceRecord> {
    return this.m.serial(async () => {
      const svc = this.service(ref);
      let ip = req.ip;
      if (req.sandbox !== undefined) {
        ip = this.m.sandbox(req.sandbox).attachments[svc.network]?.ipv4;
        if (ip === undefined) throw badRequest(`sandbox ${req.sandbox} is not on network ${svc.network}`);
      }
      if (ip === undefined || !isIPv4(ip)) throw badRequest('a task needs --sandbox or an IPv4 --ip');
      const weight = req.weight ?? 1;
      if (!Number.isInteger(weight) || weight < 0 || weight > 1000) throw badRequest(`weight ${weight} is not an integer from 0 to 1000`);
      if (svc.tasks.some((t) => t.ipv4 === ip)) throw conflict(`service ${svc.name} already has a task at ${ip}`);
      const task: TaskObject = {
        id: slot === undefined ? randomBytes(6).toString('hex') : slotTaskId(slot),
        service: svc.id,
        node: this.m.node,
        ...(slot === undefined ? {} : { slot }),
        ipv4: ip,
        healthy: req.healthy ?? true,
        draining: false,
        weight,
        ...(req.sandbox === undefined ? {} : { sandbox: this.m.sandbox(req.sandbox).name }),
      };
      const { service: _s, ...record } = task;
      await this.m.applyServices(this.services.map((s) => (s === svc ? { ...svc, tasks: [...svc.tasks, record] } : s)), svc.network, async () => {
        if (!(await this.m.writeTasks([task], [], slot !== undefined))) throw conflict(`slot ${slot} of service ${svc.name} is taken by another node`);
      });
      return this.service(svc.id);
    });
  }

  updateTask(ref: string, taskId: string, change: TaskChange): Promise<void> {
    return this.m.serial(async () => {
      const svc = this.service(ref);
      const task = this.#task(svc, taskId);
      const next = { ...task, ...change };
      await this.m.applyServices(this.services.map((s) => (s === svc ? { ...svc, tasks: svc.tasks.map((t) => (t === task ? next : t)) } : s)), svc.network, async () => {
        await this.m.writeTasks([{ ...next, service: svc.id }], []);
      });
    });
  }

  removeTask(ref: string, taskId: string): Promise<void> {
    return this.m.serial(async () => {
      const svc = this.service(ref);
      const task = this.#task(svc, taskId);
      await this.m.applyServices(this.services.map((s) => (s === svc ? { ...svc, tasks: svc.tasks.filter((t) => t !== task) } : s)), svc.network, async () => {
        await this.m.writeTasks([], [taskKey(svc.id, task.id)]);
      });
    });
  }

  /** A task of this node's: another node's tasks are that node's to change (it re-registers them as it keeps them). */
  #task(svc: ServiceRecord, taskId: string): ServiceRecord['tasks'][number] {
    const task = svc.tasks.find((t) => t.id === taskId);
    if (task === undefined) throw notFound(`service ${svc.name} has no task ${taskId}`);
    if (task.node !== this.m.node) throw conflict(`task ${taskId} of service ${svc.name} runs on node ${task.node}: change it there`);
    return task;
  }

  #own(svc: ServiceRecord): ServiceRecord['tasks'] {
    return svc.tasks.filter((t) => t.node === this.m.node);
  }
}

/**
 * What each sandbox's VIP table was last programmed with, by sandbox id: a reconcile pass
 * repeats `balance` for every sandbox, and a table that would not change is not rewritten.
 */
const programmed = new WeakMap<VipBackend, Map<string, string>>();

/**
 * What sandbox `id`'s VIP table holds when `balance` has not programmed it: `empty` for a
 * namespace made just now (nothing to write: writing the empty table cost a tool call per
 * sandbox create, 10 ms with 100 sandboxes and 19 ms with 1000), `unknown` once it is gone.
 */
export function vipTableIs(backend: VipBackend, id: string, what: 'empty' | 'unknown'): void {
  const last = programmed.get(backend) ?? new Map<string, string>();
  programmed.set(backend, last);
  if (what === 'empty') last.set(id, JSON.stringify(vipServicesOn([], [])));
  else last.delete(id);
}

/** Programs the VIPs of the services on each sandbox's networks inside that sandbox. */
export async function balance(sandboxes: readonly SandboxRecord[], services: readonly ServiceRecord[], backend: VipBackend): Promise<void> {
  const last = programmed.get(backend) ?? new Map<string, string>();
  programmed.set(backend, last);
  for (const sb of sandboxes) {
    if (sb.mode !== 'networks' || sb.netns === undefined) continue;
    const vips = vipServicesOn(services, Object.keys(sb.attachments));
    const text = JSON.stringify(vips);
    if (last.get(sb.id) === text) continue;
    last.delete(sb.id);
    await backend.apply(sb.netns, vips);
    last.set(sb.id, text);
  }
}
