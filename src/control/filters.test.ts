import test from 'ava';
import type { NetworkRecord } from '../daemon/state.js';
import { LIST_FILTERS, networkListFilter, networkPruneFilter, parseFilters, PRUNE_FILTERS } from './filters.js';

const url = (filters: unknown): URL => new URL(`http://tsnet/networks?filters=${encodeURIComponent(typeof filters === 'string' ? filters : JSON.stringify(filters))}`);

const net = (name: string, labels: Record<string, string> = {}, created = '2024-05-01T12:00:00.000Z'): NetworkRecord =>
  ({ id: `${name}`.padEnd(64, '0'), name, driver: 'bridge', scope: 'local', created, internal: false, dns: true, ipam: null, mtu: 1500, labels, options: {} }) as NetworkRecord;

test('filters come as a map of maps or, as before API 1.22, of lists; anything else is a 400 naming it', (t) => {
  t.deepEqual([...parseFilters(url({ name: { a: true, b: true } }), LIST_FILTERS)], [['name', ['a', 'b']]]);
  t.deepEqual([...parseFilters(url({ label: ['k=v'] }), LIST_FILTERS)], [['label', ['k=v']]]);
  t.is(parseFilters(new URL('http://tsnet/networks'), LIST_FILTERS).size, 0);
  t.throws(() => parseFilters(url({ foo: { x: true } }), LIST_FILTERS), { message: "invalid filter 'foo'" });
  t.throws(() => parseFilters(url({ until: { '1h': true } }), LIST_FILTERS), { message: "invalid filter 'until'" });
  t.throws(() => parseFilters(url({ name: { a: 1 } }), LIST_FILTERS), { message: /^filters\.name: .* is not a map of values to true$/ });
  t.throws(() => parseFilters(url({ name: 'a' }), LIST_FILTERS), { message: 'filters.name: "a" is not an object' });
  t.throws(() => parseFilters(url('{'), LIST_FILTERS), { message: 'filters: "{" is not JSON' });
});

test('list: values of a key are alternatives, labels must all match, dangling is an unused custom network', (t) => {
  const keep = (filters: unknown, n: NetworkRecord, inUse = false): boolean => networkListFilter(parseFilters(url(filters), LIST_FILTERS))(n, inUse);
  const web = net('web', { tier: 'front', env: 'prod' });
  t.true(keep({ name: { we: true } }, web));
  t.true(keep({ name: { x: true, eb: true } }, web));
  t.false(keep({ name: { x: true } }, web));
  t.true(keep({ label: { tier: true, 'env=prod': true } }, web));
  t.false(keep({ label: { tier: true, 'env=dev': true } }, web));
  t.true(keep({ type: { builtin: true } }, net('bridge')));
  t.false(keep({ type: { custom: true } }, net('bridge')));
  t.true(keep({ dangling: { true: true } }, web));
  t.false(keep({ dangling: { true: true } }, web, true));
  t.false(keep({ dangling: { true: true } }, net('bridge')));
  t.true(keep({ dangling: { false: true } }, net('bridge')));
  t.throws(() => keep({ type: { x: true } }, web), { message: "invalid filter 'type=x'" });
  t.throws(() => keep({ dangling: { true: true, false: true } }, web), { message: 'got more than one value for filter key "dangling"' });
});

test('prune: until is a duration back from now, Unix seconds or a date; label! drops what has all its labels', (t) => {
  const now = Date.parse('2024-05-01T13:00:00Z');
  const keep = (filters: unknown, n: NetworkRecord): boolean => networkPruneFilter(parseFilters(url(filters), PRUNE_FILTERS), now)(n);
  const n = net('n', { a: '1', b: '2' });
  t.true(keep({ until: { '1h': true } }, n));
  t.false(keep({ until: { '1h0m1s': true } }, n));
  t.true(keep({ until: { '59m59.5s': true } }, n));
  t.true(keep({ until: { [String(Date.parse('2024-05-01T12:00:00Z') / 1000)]: true } }, n));
  t.false(keep({ until: { '2024-05-01T11:59:59Z': true } }, n));
  t.true(keep({ until: { '2024-05-02': true } }, n));
  t.throws(() => keep({ until: { soon: true } }, n), { message: /^invalid filter 'until=soon'/ });
  t.false(keep({ 'label!': { a: true } }, n));
  t.true(keep({ 'label!': { a: true, c: true } }, n));
  t.false(keep({ label: { c: true } }, n));
});
