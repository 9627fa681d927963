import { isIPv4 } from 'node:net';
import { Cidr } from '../ipam/cidr.js';

/**
 * A value checked to be one nft token that cannot end a rule or start another: the only thing
 * `nft` below interpolates. Made only by the checkers in this file.
 */
const KEY = Symbol('nft token');

export class Token {
  constructor(
    key: typeof KEY,
    readonly text: string,
  ) {
    if (key !== KEY) throw new Error('nft: tokens come from the checkers in net/nft/values.ts');
  }
}

const token = (text: string): Token => new Token(KEY, text);

const refuse = (what: string, v: unknown): never => {
  throw new Error(`nft: ${what} ${JSON.stringify(v)?.slice(0, 60)} cannot go into a rule`);
};

/** A table name, as nft's grammar takes it unquoted. */
export const table = (v: string): Token => (/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(v) ? token(v) : refuse('table name', v));

/** An interface name, quoted (nft would read `*` as a wildcard and `"` as the string's end). */
export const ifname = (v: string): Token => (/^[A-Za-z0-9_.-]{1,15}$/.test(v) ? token(`"${v}"`) : refuse('interface name', v));

/** Interface names as the elements of an anonymous set. */
export const ifnames = (vs: readonly string[]): Token => join(vs.map(ifname), ', ');

export const ipv4 = (v: string): Token => (isIPv4(v) ? token(v) : refuse('IPv4 address', v));

/** A subnet in canonical form (network address, prefix length). */
export function cidr(v: string): Token {
  try {
    if (Cidr.parse(v).toString() === v) return token(v);
  } catch {
    // refused below
  }
  return refuse('subnet', v);
}

export const port = (v: number): Token => (Number.isInteger(v) && v >= 1 && v <= 65535 ? token(String(v)) : refuse('port', v));

export const protocol = (v: string): Token => (v === 'tcp' || v === 'udp' ? token(v) : refuse('protocol', v));

/** A comment: a network, sandbox or service name, quoted. */
export const comment = (v: string): Token => (/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(v) ? token(`"${v}"`) : refuse('comment', v));

/**
 * The one way rule text is built: a template whose holes take only Tokens (checked values, or
 * fragments built by `nft` itself) and our own small integers (map keys, counts). A string from
 * a request cannot get in unchecked. The result is a Token, so fragments compose.
 */
export function nft(parts: TemplateStringsArray, ...values: (Token | number)[]): Token {
  return token(
    parts.reduce((out, part, i) => {
      if (i === 0) return part;
      const v = values[i - 1];
      const text = v instanceof Token ? v.text : Number.isSafeInteger(v) && (v as number) >= 0 ? String(v) : refuse('value', v);
      return out + text + part;
    }, ''),
  );
}

/** Fragments joined with `sep` (literal text of ours). */
export const join = (fragments: readonly Token[], sep: string): Token => token(fragments.map((f) => f.text).join(sep));

/** A whole `nft -f` file from its lines. */
export const render = (lines: readonly Token[]): string => lines.map((l) => l.text).join('\n') + '\n';
