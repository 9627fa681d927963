/**
 * Where a replicated service's tasks should run. Pure and deterministic: every node computes the
 * same plan from the same store view, and each claims only the slots the plan gives it (a CAS
 * create of the slot's task key under its lease), so even a race between two views has one winner.
 */

/** A task as placement sees it: which slot it fills, where, and how old it is. */
export interface PlacedTask {
  id: string;
  slot: number;
  node: string;
  /** The store revision that created its key: the lower, the older. */
  createRevision: number;
}

export interface PlacementInput {
  /** How many replicas the service asks for: slots 1…count. */
  count: number;
  /** The ready nodes' names. */
  nodes: readonly string[];
  tasks: readonly PlacedTask[];
}

export interface Placement {
  /** Node name → the slots it should claim, ascending. Only nodes with something to claim appear. */
  claims: Map<string, number[]>;
  /** Tasks to stop and delete (each by the node that runs it): slots above count, or a slot's younger holder. */
  surplus: PlacedTask[];
}

/** The task id that fills a slot: one id per slot, so two claims of one slot race on one key. */
export const slotTaskId = (slot: number): string => `slot${slot}`;

const older = (a: PlacedTask, b: PlacedTask): number => a.createRevision - b.createRevision || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * Keeps every live task it can (no churn: a node coming back takes nothing from anyone), drops
 * what is surplus, and gives each empty slot to the ready node running the fewest of this
 * service's tasks, ties by name. Tasks on nodes that are not ready are ignored: they leave with
 * their node's lease, and their slots are empty meanwhile.
 */
export function place({ count, nodes, tasks }: PlacementInput): Placement {
  const ready = [...new Set(nodes)].sort();
  const live = tasks.filter((t) => ready.includes(t.node)).sort(older);
  const held = new Map<number, PlacedTask>();
  const surplus: PlacedTask[] = [];
  for (const task of live) {
    if (task.slot < 1 || task.slot > count || held.has(task.slot)) surplus.push(task);
    else held.set(task.slot, task);
  }
  const load = new Map(ready.map((n) => [n, 0]));
  for (const task of held.values()) load.set(task.node, (load.get(task.node) ?? 0) + 1);
  const claims = new Map<string, number[]>();
  for (let slot = 1; slot <= count && ready.length > 0; slot++) {
    if (held.has(slot)) continue;
    // `ready` is sorted, so the first node with the least load is also first by name.
    const node = ready.reduce((best, n) => ((load.get(n) ?? 0) < (load.get(best) ?? 0) ? n : best));
    load.set(node, (load.get(node) ?? 0) + 1);
    claims.set(node, [...(claims.get(node) ?? []), slot]);
  }
  return { claims, surplus };
}
