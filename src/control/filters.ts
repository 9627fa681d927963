import { badRequest } from '../daemon/errors.js';
import type { NetworkRecord } from '../daemon/state.js';
import { show } from '../registry/validate.js';
import { object } from './fields.js';

/**
 * Docker's `filters` query parameter for `GET /networks` and `POST /networks/prune`, with the
 * Engine's semantics: values of one key are alternatives (any may match) except `label`, whose
 * values must all match; different keys must all hold.
 */

/** Each filter key with its values. */
export type Filters = ReadonlyMap<string, readonly string[]>;

export const LIST_FILTERS = ['dangling', 'driver', 'id', 'label', 'name', 'scope', 'type'] as const;
export const PRUNE_FILTERS = ['label', 'label!', 'until'] as const;

/** Reads `filters`: a JSON map of maps (`{"name": {"app": true}}`), or of lists as before API 1.22; a key not in `accepted` is a 400. */
export function parseFilters(url: URL, accepted: readonly string[]): Filters {
  const text = url.searchParams.get('filters');
  const filters = new Map<string, string[]>();
  if (text === null || text === '') return filters;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw badRequest(`filters: ${show(text)} is not JSON`);
  }
  for (const [key, v] of Object.entries(object(parsed, 'filters') ?? {})) {
    if (!accepted.includes(key)) throw badRequest(`invalid filter '${key}'`);
    const values = Array.isArray(v) ? v : Object.entries(object(v, `filters.${key}`) ?? {}).map(([value, on]) => (on === true ? value : on));
    for (const value of values) if (typeof value !== 'string') throw badRequest(`filters.${key}: ${show(v)} is not a map of values to true`);
    filters.set(key, values as string[]);
  }
  return filters;
}

/** `key` or `key=value`: every one must be among `labels` (Docker's MatchKVList). */
function labelsMatch(wanted: readonly string[], labels: Readonly<Record<string, string>>): boolean {
  return wanted.every((w) => {
    const [key, value] = w.includes('=') ? [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)] : [w, undefined];
    return Object.hasOwn(labels, key) && (value === undefined || labels[key] === value);
  });
}

/** The networks a daemon has from the start: never removed, never pruned, `type=builtin`. */
export const builtin = (net: NetworkRecord): boolean => net.name === 'bridge' || net.name === 'host' || net.name === 'none';

/** A filter key given once at most, with its one value. */
function single(filters: Filters, key: string): string | undefined {
  const values = filters.get(key);
  if (values !== undefined && values.length > 1) throw badRequest(`got more than one value for filter key "${key}"`);
  return values?.[0];
}

/**
 * What `GET /networks?filters=` keeps: `name` and `id` match any part (Docker takes them as
 * unanchored regular expressions; tsnet as plain text, so a hostile pattern cannot stall it),
 * `driver` and `scope` the whole value, `type` custom or builtin, `dangling` unused custom networks.
 */
export function networkListFilter(filters: Filters): (net: NetworkRecord, inUse: boolean) => boolean {
  const dangling = single(filters, 'dangling');
  if (dangling !== undefined && !['true', '1', 'false', '0'].includes(dangling)) throw badRequest(`invalid value for filter 'dangling', must be "true" (or "1"), or "false" (or "0")`);
  const badType = filters.get('type')?.find((v) => v !== 'custom' && v !== 'builtin');
  if (badType !== undefined) throw badRequest(`invalid filter 'type=${badType}'`);
  const any = (key: string, test: (v: string) => boolean): boolean => filters.get(key)?.some(test) ?? true;
  return (net, inUse) =>
    any('name', (v) => net.name.includes(v)) &&
    any('id', (v) => net.id.includes(v)) &&
    any('driver', (v) => v === net.driver) &&
    any('scope', (v) => v === net.scope) &&
    any('type', (v) => (v === 'builtin') === builtin(net)) &&
    labelsMatch(filters.get('label') ?? [], net.labels) &&
    (dangling === undefined || (dangling === 'true' || dangling === '1') === (!builtin(net) && !inUse));
}

const DURATION = /^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/;
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `until`'s value in ms since the epoch: a Go duration back from `now` (`24h`, `1h30m`), Unix seconds, or an RFC 3339 date or time. */
function timestamp(v: string, now: number): number {
  if (DURATION.test(v)) return now - [...v.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)].reduce((ms, [, n, unit]) => ms + Number(n) * UNIT_MS[unit!]!, 0);
  if (/^\d+(?:\.\d+)?$/.test(v)) return Number(v) * 1000;
  const date = /^\d{4}-\d{2}-\d{2}(?:T[\d:.]+(?:Z|[+-]\d{2}:\d{2})?)?$/.test(v) ? Date.parse(v) : NaN;
  if (Number.isNaN(date)) throw badRequest(`invalid filter 'until=${v}': not a duration (24h), Unix time or RFC 3339 date`);
  return date;
}

/** What `POST /networks/prune?filters=` may remove: made before `until`, with every `label`, and without all of `label!`. */
export function networkPruneFilter(filters: Filters, now: number): (net: NetworkRecord) => boolean {
  const untilText = single(filters, 'until');
  const until = untilText === undefined ? Infinity : timestamp(untilText, now);
  const without = filters.get('label!');
  return (net) => Date.parse(net.created) <= until && labelsMatch(filters.get('label') ?? [], net.labels) && (without === undefined || !labelsMatch(without, net.labels));
}
