/**
 * Domain-name reading on raw messages. Names come back lowercased, without the trailing dot,
 * with RFC 4343 escapes for bytes that cannot stand as themselves, so that a label holding a
 * dot can never be confused with two labels.
 */

const MAX_NAME = 255;
const MAX_POINTER_HOPS = 64;

export interface NameRead {
  /** Lowercased presentation form; '' for the root. */
  name: string;
  /** Offset just past the name as it is stored at the starting position. */
  end: number;
}

function labelText(buf: Buffer, start: number, end: number): string {
  let plain = true;
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (c <= 0x20 || c >= 0x7f || c === 0x2e || c === 0x5c) {
      plain = false;
      break;
    }
  }
  if (plain) return buf.toString('latin1', start, end).toLowerCase();
  let out = '';
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (c === 0x2e || c === 0x5c) out += '\\' + String.fromCharCode(c);
    else if (c <= 0x20 || c >= 0x7f) out += '\\' + String(c).padStart(3, '0');
    else out += String.fromCharCode(c).toLowerCase();
  }
  return out;
}

/**
 * Reads a name at `offset`. With `allowPointers` false (a query's question) a compression
 * pointer is an error. Returns null for anything malformed.
 */
export function readName(buf: Buffer, offset: number, allowPointers = true): NameRead | null {
  let name = '';
  let wire = 0;
  let pos = offset;
  let end = -1;
  for (let hops = 0; hops <= MAX_POINTER_HOPS; ) {
    if (pos >= buf.length) return null;
    const len = buf[pos]!;
    if (len === 0) {
      return { name, end: end === -1 ? pos + 1 : end };
    }
    if ((len & 0xc0) === 0xc0) {
      if (!allowPointers || pos + 1 >= buf.length) return null;
      if (end === -1) end = pos + 2;
      const target = ((len & 0x3f) << 8) | buf[pos + 1]!;
      if (target >= pos) return null; // pointers only go backwards: no loops
      pos = target;
      hops++;
      continue;
    }
    if (len & 0xc0) return null; // 0x40 and 0x80 label types are obsolete
    const labelEnd = pos + 1 + len;
    if (labelEnd > buf.length) return null;
    wire += len + 1;
    if (wire + 1 > MAX_NAME) return null;
    const label = labelText(buf, pos + 1, labelEnd);
    name = name.length === 0 ? label : name + '.' + label;
    pos = labelEnd;
  }
  return null;
}

/**
 * Checks a question name without decoding it (no pointers, labels up to 63, name up to 255)
 * and returns the offset just past it, or -1.
 */
export function questionNameEnd(buf: Buffer, offset: number): number {
  let pos = offset;
  while (pos < buf.length) {
    const len = buf[pos]!;
    if (len === 0) return pos + 1;
    if (len > 63) return -1;
    pos += 1 + len;
    if (pos - offset + 1 > MAX_NAME) return -1;
  }
  return -1;
}

/** Offset just past a name without decoding it; -1 when malformed. */
export function skipName(buf: Buffer, offset: number): number {
  let pos = offset;
  while (pos < buf.length) {
    const len = buf[pos]!;
    if (len === 0) return pos + 1;
    if ((len & 0xc0) === 0xc0) return pos + 2 <= buf.length ? pos + 2 : -1;
    if (len & 0xc0) return -1;
    pos += 1 + len;
  }
  return -1;
}

/** Lowercases and strips one trailing dot: the form names are indexed under. */
export function canonicalName(name: string): string {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  return n.toLowerCase();
}
