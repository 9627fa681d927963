/**
 * Where each kind of object lives in the store (under the store's own prefix, `/tsnet/v1/` on
 * etcd). Leased keys belong to one node and leave with it; the rest outlive any node.
 *
 * | key                               | value            | lease | written by                |
 * |-----------------------------------|------------------|-------|---------------------------|
 * | nodes/<node>                      | NodeObject       | node  | the node itself           |
 * | networks/<network id>             | NetworkObject    |       | the API node, CAS on name |
 * | names/networks/<scope>/<name>     | network id       |       | same txn as the network   |
 * | ipam/subnets/<base>_<bits>        | SubnetClaim      |       | same txn as the network   |
 * | ipam/subnet-guard                 | SubnetClaim      |       | every subnet claim's txn  |
 * | ipam/addresses/<network id>/<ip>  | AddressClaim     |       | the allocating node, CAS  |
 * | ipam/vnis/<vni>                   | VniClaim         |       | same txn as the network   |
 * | ipam/tunnels/<ip>                 | TunnelClaim      |       | the node, CAS             |
 * | sandboxes/<node>/<sandbox id>     | SandboxObject    |       | its node                  |
 * | endpoints/<network id>/<endpoint> | EndpointObject   | node  | its node                  |
 * | services/<service id>             | ServiceObject    |       | the API node, CAS on name |
 * | names/services/<name>             | service id       |       | same txn as the service   |
 * | tasks/<service id>/<task id>      | TaskObject       |       | the scheduler, its node   |
 *
 * The subnet guard is rewritten by every subnet claim, and each claim is conditioned on the
 * guard's revision as of its read of the other claims: a claim that overlaps another without
 * being the same key (172.17.5.0/24 against the pool block 172.17.0.0/16) then still loses.
 *
 * Address claims are not leased: a node cut off from the store may still run what holds them,
 * and an expired lease must not hand its addresses to someone else.
 */

export const NODES = 'nodes/';
export const NETWORKS = 'networks/';
export const SANDBOXES = 'sandboxes/';
export const ENDPOINTS = 'endpoints/';
export const SERVICES = 'services/';
export const TASKS = 'tasks/';
export const SUBNETS = 'ipam/subnets/';
export const ADDRESSES = 'ipam/addresses/';
export const VNIS = 'ipam/vnis/';
export const TUNNELS = 'ipam/tunnels/';

export const nodeKey = (node: string): string => `${NODES}${node}`;
export const networkKey = (id: string): string => `${NETWORKS}${id}`;
/**
 * A `local` network's name is its node's (every node has a `bridge`), a `swarm` one's the
 * cluster's: `names/networks/<node>/<name>` or `names/networks/-swarm/<name>` (no node is named
 * `-swarm`: node names start with a letter or digit).
 */
export const networkNameKey = (name: string, node?: string): string => `names/networks/${node ?? '-swarm'}/${name}`;
/** `/` is the key separator, so a CIDR's is written `_`. */
export const subnetKey = (cidr: string): string => `${SUBNETS}${cidr.replace('/', '_')}`;
/** The subnet a `subnetKey` names. */
export const subnetOfKey = (key: string): string => key.slice(SUBNETS.length).replace('_', '/');
export const SUBNET_GUARD = 'ipam/subnet-guard';
export const vniKey = (vni: number): string => `${VNIS}${vni}`;
export const tunnelKey = (ip: string): string => `${TUNNELS}${ip}`;
export const addressKey = (networkId: string, ip: string): string => `${ADDRESSES}${networkId}/${ip}`;
export const addressesOf = (networkId: string): string => `${ADDRESSES}${networkId}/`;
export const sandboxKey = (node: string, id: string): string => `${SANDBOXES}${node}/${id}`;
export const sandboxesOf = (node: string): string => `${SANDBOXES}${node}/`;
export const endpointKey = (networkId: string, endpointId: string): string => `${ENDPOINTS}${networkId}/${endpointId}`;
export const serviceKey = (id: string): string => `${SERVICES}${id}`;
export const serviceNameKey = (name: string): string => `names/services/${name}`;
export const taskKey = (serviceId: string, taskId: string): string => `${TASKS}${serviceId}/${taskId}`;
export const tasksOf = (serviceId: string): string => `${TASKS}${serviceId}/`;

/** The last path segment of a key: the object's own id. */
export const idOf = (key: string): string => key.slice(key.lastIndexOf('/') + 1);
