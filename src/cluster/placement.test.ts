import test from 'ava';
import { place, slotTaskId, type PlacedTask } from './placement.js';

/** Runs placement to a fixed point as the nodes would: each claims its slots, surplus is deleted. */
function converge(count: number, nodes: string[], start: PlacedTask[]): PlacedTask[] {
  let tasks = start;
  let revision = Math.max(0, ...start.map((t) => t.createRevision));
  for (let round = 0; round < 5; round++) {
    const { claims, surplus } = place({ count, nodes, tasks });
    if (claims.size === 0 && surplus.length === 0) return tasks;
    tasks = tasks.filter((t) => !surplus.includes(t));
    for (const [node, slots] of claims) for (const slot of slots) tasks.push({ id: `${slotTaskId(slot)}@${node}`, slot, node, createRevision: ++revision });
  }
  throw new Error('placement did not converge in 5 rounds');
}

/** node → its slots, for readable expectations. */
const spread = (tasks: PlacedTask[]): Record<string, number[]> => {
  const out: Record<string, number[]> = {};
  for (const t of [...tasks].sort((a, b) => a.slot - b.slot)) (out[t.node] ??= []).push(t.slot);
  return out;
};

const task = (slot: number, node: string, createRevision = slot): PlacedTask => ({ id: `${slotTaskId(slot)}@${node}`, slot, node, createRevision });

test('3 replicas on 3 nodes: one each, in name order', (t) => {
  const plan = place({ count: 3, nodes: ['c', 'a', 'b'], tasks: [] });
  t.deepEqual([...plan.claims], [['a', [1]], ['b', [2]], ['c', [3]]]);
  t.deepEqual(plan.surplus, []);
});

test('a node goes down: its slots move to the others, spread; when it comes back nothing moves', (t) => {
  const all = converge(6, ['a', 'b', 'c'], []);
  t.deepEqual(spread(all), { a: [1, 4], b: [2, 5], c: [3, 6] });
  const withoutC = converge(6, ['a', 'b'], all.filter((x) => x.node !== 'c'));
  t.deepEqual(spread(withoutC), { a: [1, 3, 4], b: [2, 5, 6] });
  // c is back while its old tasks are already gone with its lease: no churn, no duplicates.
  const back = converge(6, ['a', 'b', 'c'], withoutC);
  t.deepEqual(back, withoutC);
  t.deepEqual(place({ count: 6, nodes: ['a', 'b', 'c'], tasks: back }), { claims: new Map(), surplus: [] });
});

test('tasks on a node that is not ready are neither kept nor surplus: their slots are refilled', (t) => {
  const plan = place({ count: 3, nodes: ['a', 'b'], tasks: [task(1, 'a'), task(2, 'b'), task(3, 'c')] });
  t.deepEqual([...plan.claims], [['a', [3]]]);
  t.deepEqual(plan.surplus, []);
});

test('a slot held twice keeps the older task; the younger is surplus', (t) => {
  const old = task(2, 'b', 10);
  const young = task(2, 'a', 20);
  const plan = place({ count: 2, nodes: ['a', 'b'], tasks: [young, task(1, 'a', 5), old] });
  t.deepEqual(plan.surplus, [young]);
  t.deepEqual(plan.claims, new Map());
});

test('scale 3→5 fills the least loaded nodes; 5→2 drops slots 3-5 and moves nothing else', (t) => {
  const three = converge(3, ['a', 'b', 'c'], []);
  const five = converge(5, ['a', 'b', 'c'], three);
  t.deepEqual(spread(five), { a: [1, 4], b: [2, 5], c: [3] });
  t.true(three.every((x) => five.includes(x)), 'the first three stayed where they were');
  const plan = place({ count: 2, nodes: ['a', 'b', 'c'], tasks: five });
  t.deepEqual(plan.surplus.map((x) => x.slot).sort(), [3, 4, 5]);
  t.deepEqual(spread(converge(2, ['a', 'b', 'c'], five)), { a: [1], b: [2] });
});

test('the plan does not depend on the order of its inputs, and no ready node means no claims', (t) => {
  const tasks = [task(1, 'b'), task(4, 'a'), task(2, 'b', 9), task(2, 'c', 3)];
  const a = place({ count: 5, nodes: ['a', 'b', 'c'], tasks });
  const b = place({ count: 5, nodes: ['c', 'b', 'a'], tasks: [...tasks].reverse() });
  t.deepEqual(a, b);
  t.deepEqual(place({ count: 3, nodes: [], tasks: [task(1, 'a')] }), { claims: new Map(), surplus: [] });
});
