import { badRequest } from '../daemon/errors.js';
import type { ServiceCreate, ServiceRecord, TaskAdd, TaskChange } from '../daemon/services.js';
import { show } from '../registry/validate.js';
import { integer, object, strings, type Json } from './fields.js';

export const serviceView = (s: ServiceRecord): Json => ({
  Id: s.id,
  Name: s.name,
  Network: s.network,
  EndpointMode: s.mode,
  VirtualIP: s.vip ?? null,
  Ports: s.ports,
  Tasks: s.tasks.map((t) => ({ Id: t.id, Address: t.ipv4, Sandbox: t.sandbox ?? null, Node: t.node, ...(t.slot === undefined ? {} : { Slot: t.slot }), Healthy: t.healthy, Draining: t.draining, Weight: t.weight })),
  Created: s.created,
  Publish: (s.publish ?? []).map((p) => `${p.hostIp}:${p.hostPort}->${p.port}/${p.protocol}`),
  Replicas: s.replicas === undefined ? null : { Count: s.replicas.count, Command: s.replicas.command, HealthCmd: s.replicas.healthCmd ?? null },
});

function field<T>(body: Json, key: string, type: 'string' | 'boolean' | 'number', path = key): T | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== type) throw badRequest(`${path}: ${show(v)} is not a ${type}`);
  return v as T;
}

export function parseServiceCreate(body: Json): ServiceCreate {
  const req: ServiceCreate = { name: field<string>(body, 'Name', 'string') ?? '', network: field<string>(body, 'Network', 'string') ?? '' };
  const mode = field<string>(body, 'EndpointMode', 'string');
  if (mode !== undefined && mode !== 'vip' && mode !== 'dnsrr') throw badRequest(`EndpointMode: ${show(mode)} is not "vip" or "dnsrr"`);
  if (mode !== undefined) req.endpointMode = mode;
  const replicas = object(body.Replicas, 'Replicas');
  if (replicas !== undefined) {
    const count = integer(replicas.Count, 'Replicas.Count', 0, 1000) ?? 1;
    const healthCmd = field<string>(replicas, 'HealthCmd', 'string', 'Replicas.HealthCmd');
    // Its range is the service manager's to check, for every caller, not only this API.
    const healthInterval = integer(replicas.HealthInterval, 'Replicas.HealthInterval', 0, Number.MAX_SAFE_INTEGER);
    const healthTcp = field<number>(replicas, 'HealthTcp', 'number', 'Replicas.HealthTcp');
    if (healthTcp !== undefined && (!Number.isInteger(healthTcp) || healthTcp < 1 || healthTcp > 65535)) throw badRequest(`Replicas.HealthTcp ${healthTcp} is not a port`);
    req.replicas = {
      count,
      command: field<string>(replicas, 'Command', 'string', 'Replicas.Command') ?? '',
      ...(healthCmd === undefined ? {} : { healthCmd }),
      ...(healthTcp === undefined ? {} : { healthTcp }),
      ...(healthInterval === undefined ? {} : { healthInterval }),
    };
  }
  const publish = strings(body.Publish, 'Publish');
  if (publish !== undefined) req.publish = publish;
  const ports = strings(body.Ports, 'Ports');
  if (ports !== undefined) req.ports = ports;
  return req;
}

export function parseTaskAdd(body: Json): TaskAdd {
  const req: TaskAdd = {};
  const sandbox = field<string>(body, 'Sandbox', 'string');
  const ip = field<string>(body, 'Address', 'string');
  const weight = field<number>(body, 'Weight', 'number');
  if (sandbox !== undefined) req.sandbox = sandbox;
  if (ip !== undefined) req.ip = ip;
  if (weight !== undefined) req.weight = weight;
  return req;
}

export function parseTaskChange(body: Json): TaskChange {
  const change: TaskChange = {};
  const healthy = field<boolean>(body, 'Healthy', 'boolean');
  const draining = field<boolean>(body, 'Draining', 'boolean');
  const weight = field<number>(body, 'Weight', 'number');
  if (healthy !== undefined) change.healthy = healthy;
  if (draining !== undefined) change.draining = draining;
  if (weight !== undefined) {
    if (!Number.isInteger(weight) || weight < 0 || weight > 1000) throw badRequest(`Weight ${weight} is not an integer from 0 to 1000`);
    change.weight = weight;
  }
  return change;
}
