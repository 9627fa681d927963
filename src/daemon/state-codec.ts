import { endpointKey, sandboxKey } from '../cluster/keys.js';
import type { EndpointObject, SandboxObject } from '../cluster/objects.js';
import type { KeyValue, Operation } from '../store/store.js';
import type { NetworkRecord, SandboxRecord } from './state.js';

/**
 * This node's sandboxes split into what it writes to stores: objects every node sees
 * (cluster store, one key each) and what only this host knows (local store: a sandbox's
 * namespace, host interface names and file hashes). Diffing two splits gives the few writes
 * a change needs, never a rewrite of the whole state.
 */

/** What this host alone knows of one of its sandboxes. */
export interface LocalSandbox {
  netns?: string;
  ownsNetns: boolean;
  fileHashes: Record<string, string>;
  /** Network name → host end of its veth pair. */
  hostIfs: Record<string, string>;
}

export const localSandboxKey = (id: string): string => `sandboxes/${id}`;

export type Objects = Map<string, unknown>;

function sandboxObject(sb: SandboxRecord, node: string): SandboxObject {
  const { netns: _netns, ownsNetns: _owns, fileHashes: _hashes, attachments, ports, ...rest } = sb;
  return {
    ...rest,
    node,
    attachments: Object.fromEntries(Object.entries(attachments).map(([net, { hostIf: _hostIf, ...a }]) => [net, a])),
    ports: ports ?? [],
  };
}

function endpointObjects(sb: SandboxRecord, networks: readonly NetworkRecord[], node: string): [string, EndpointObject][] {
  return Object.entries(sb.attachments).flatMap(([net, a]) => {
    const network = networks.find((n) => n.name === net);
    if (network === undefined) return [];
    const ep: EndpointObject = {
      id: a.endpointId,
      network: network.id,
      node,
      sandbox: { id: sb.id, name: sb.name, hostname: sb.hostname },
      ...(a.ipv4 === undefined ? {} : { ipv4: a.ipv4 }),
      ...(a.ipv6 === undefined ? {} : { ipv6: a.ipv6 }),
      aliases: [...new Set([...sb.aliases, ...a.aliases])],
    };
    return [[endpointKey(network.id, a.endpointId), ep]];
  });
}

/** One sandbox's cluster objects (itself and its endpoints), by key. */
export const sandboxObjects = (sb: SandboxRecord, networks: readonly NetworkRecord[], node: string): Objects =>
  new Map<string, unknown>([[sandboxKey(node, sb.id), sandboxObject(sb, node)], ...endpointObjects(sb, networks, node)]);

/** What only this host knows of one sandbox. */
export function localSandbox(sb: SandboxRecord): LocalSandbox {
  return {
    ...(sb.netns === undefined ? {} : { netns: sb.netns }),
    ownsNetns: sb.ownsNetns,
    fileHashes: sb.fileHashes,
    hostIfs: Object.fromEntries(Object.entries(sb.attachments).map(([net, a]) => [net, a.hostIf])),
  };
}

/** Objects as the JSON text a store holds: what a later diff compares against, immune to later edits. */
export const serialized = (objects: ReadonlyMap<string, unknown>): Map<string, string> => new Map([...objects].map(([k, v]) => [k, JSON.stringify(v)]));

/** The writes that turn `before` into `after`: puts of what is new or changed, deletes of what went. */
export function diff(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>): Operation[] {
  const ops: Operation[] = [];
  for (const [key, text] of after) if (before.get(key) !== text) ops.push({ op: 'put', key, value: JSON.parse(text) as unknown });
  for (const key of before.keys()) if (!after.has(key)) ops.push({ op: 'delete', key });
  return ops;
}

/**
 * This node's sandboxes from what the stores hold. A sandbox whose local facts are missing
 * (a crash between the two writes) gets the names tsnet would have given it.
 */
export function fromStored(
  sandboxes: readonly KeyValue<SandboxObject>[],
  local: readonly KeyValue<LocalSandbox>[],
  defaults: { netnsPrefix: string; hostIf(sandboxId: string, network: string): string },
): SandboxRecord[] {
  const facts = new Map(local.map((kv) => [kv.key, kv.value]));
  return sandboxes.map(({ value: { node: _node, ...sb } }): SandboxRecord => {
    const f = facts.get(localSandboxKey(sb.id));
    const netns = f?.netns ?? (sb.mode === 'host' ? undefined : `${defaults.netnsPrefix}${sb.mode.startsWith('container:') ? sb.mode.slice('container:'.length) : sb.name}`);
    return {
      ...sb,
      ...(netns === undefined ? {} : { netns }),
      ownsNetns: f?.ownsNetns ?? true,
      fileHashes: f?.fileHashes ?? {},
      attachments: Object.fromEntries(Object.entries(sb.attachments).map(([net, a]) => [net, { ...a, hostIf: f?.hostIfs[net] ?? defaults.hostIf(sb.id, net) }])),
    };
  });
}
