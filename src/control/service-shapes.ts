import { badRequest } from '../daemon/errors.js';
import type { ServiceCreate, ServiceRecord, TaskAdd, TaskChange } from '../daemon/services.js';

type Json = Record<string, unknown>;

export const serviceView = (s: ServiceRecord): Json => ({
  Id: s.id,
  Name: s.name,
  Network: s.network,
  EndpointMode: s.mode,
  VirtualIP: s.vip ?? null,
  Ports: s.ports,
  Tasks: s.tasks.map((t) => ({ Id: t.id, Address: t.ipv4, Sandbox: t.sandbox ?? null, Healthy: t.healthy, Draining: t.draining, Weight: t.weight })),
  Created: s.created,
  Publish: (s.publish ?? []).map((p) => `${p.hostIp}:${p.hostPort}->${p.port}/${p.protocol}`),
  Replicas: s.replicas === undefined ? null : { Count: s.replicas.count, Command: s.replicas.command, HealthCmd: s.replicas.healthCmd ?? null },
});

function field<T>(body: Json, key: string, type: 'string' | 'boolean' | 'number'): T | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== type) throw badRequest(`${key}: ${JSON.stringify(v)} is not a ${type}`);
  return v as T;
}

export function parseServiceCreate(body: Json): ServiceCreate {
  const req: ServiceCreate = { name: field<string>(body, 'Name', 'string') ?? '', network: field<string>(body, 'Network', 'string') ?? '' };
  const mode = field<string>(body, 'EndpointMode', 'string');
  if (mode !== undefined) req.endpointMode = mode as 'vip' | 'dnsrr';
  const replicas = body.Replicas as Json | undefined;
  if (replicas !== undefined && replicas !== null) {
    const count = field<number>(replicas, 'Count', 'number') ?? 1;
    if (!Number.isInteger(count) || count < 0 || count > 1000) throw badRequest(`Replicas.Count ${count} is not an integer from 0 to 1000`);
    const healthCmd = field<string>(replicas, 'HealthCmd', 'string');
    const healthInterval = field<number>(replicas, 'HealthInterval', 'number');
    const healthTcp = field<number>(replicas, 'HealthTcp', 'number');
    if (healthTcp !== undefined && (!Number.isInteger(healthTcp) || healthTcp < 1 || healthTcp > 65535)) throw badRequest(`Replicas.HealthTcp ${healthTcp} is not a port`);
    req.replicas = {
      count,
      command: field<string>(replicas, 'Command', 'string') ?? '',
      ...(healthCmd === undefined ? {} : { healthCmd }),
      ...(healthTcp === undefined ? {} : { healthTcp }),
      ...(healthInterval === undefined ? {} : { healthInterval }),
    };
  }
  if (body.Publish !== undefined) {
    if (!Array.isArray(body.Publish) || body.Publish.some((p) => typeof p !== 'string')) throw badRequest('Publish: expected a list of HOSTPORT:TARGET');
    req.publish = body.Publish as string[];
  }
  if (body.Ports !== undefined) {
    if (!Array.isArray(body.Ports) || body.Ports.some((p) => typeof p !== 'string')) throw badRequest('Ports: expected a list of NAME:PROTO:PORT');
    req.ports = body.Ports as string[];
  }
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
