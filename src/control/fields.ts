import { badRequest } from '../daemon/errors.js';
import { show } from '../registry/validate.js';

/**
 * Typed reads of request-body fields: each returns undefined for an absent (or null) field and
 * throws a 400 naming the field (`IPAM.Config[0].Subnet`) for a value of the wrong JSON type.
 */

export type Json = Record<string, unknown>;

const wrong = (v: unknown, path: string, what: string): never => {
  throw badRequest(`${path}: ${show(v)} is not ${what}`);
};

export function object(v: unknown, path: string): Json | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) wrong(v, path, 'an object');
  return v as Json;
}

/** An object that must be there (a list item). */
export const record = (v: unknown, path: string): Json => object(v, path) ?? wrong(v, path, 'an object');

/** A string; '' counts as absent (the Docker CLI sends empty fields). */
export function string(v: unknown, path: string): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') wrong(v, path, 'a string');
  return v as string;
}

export function boolean(v: unknown, path: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') wrong(v, path, 'true or false');
  return v as boolean;
}

export function integer(v: unknown, path: string, min: number, max: number): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) wrong(v, path, `an integer from ${min} to ${max}`);
  return v as number;
}

/** A list whose every item `item` reads (an item may not be null). */
export function list<T>(v: unknown, path: string, item: (v: unknown, path: string) => T | undefined): T[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) return wrong(v, path, 'a list');
  return v.map((x, i) => item(x, `${path}[${i}]`) ?? wrong(x, `${path}[${i}]`, 'a value'));
}

export const strings = (v: unknown, path: string): string[] | undefined => list(v, path, (x, p) => (typeof x === 'string' ? x : wrong(x, p, 'a string')));

export function stringMap(v: unknown, path: string): Record<string, string> | undefined {
  const o = object(v, path);
  if (o === undefined) return undefined;
  for (const [k, x] of Object.entries(o)) if (typeof x !== 'string') wrong(x, `${path}.${k}`, 'a string');
  return o as Record<string, string>;
}

/** The fields of `o` that were given: an optional field a body left out stays out, never `undefined`. */
export function defined<T extends Record<string, unknown>>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}
