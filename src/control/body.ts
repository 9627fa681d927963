import type { IncomingMessage } from 'node:http';
import { ApiError } from '../daemon/errors.js';

/** The largest request body the control API reads (Docker's create bodies are a few KB). */
export const MAX_BODY = 1024 * 1024;
/** Objects and arrays nested deeper than this are refused before they are parsed. */
export const MAX_DEPTH = 32;

/** How deep `text` nests `{` and `[` outside strings; stops counting once past `limit`. */
function depthOf(text: string, limit: number): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length && deepest <= limit; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') deepest = Math.max(deepest, ++depth);
    else if (c === '}' || c === ']') depth--;
  }
  return deepest;
}

/**
 * Reads a JSON object body of at most MAX_BODY bytes. A bigger one is refused with 413 as soon
 * as its Content-Length says so, or as soon as that many bytes have come: it is never held whole.
 */
export async function readJsonBody(req: IncomingMessage, limit = MAX_BODY): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new ApiError(413, `request body of ${declared} bytes is over the limit of ${limit}`);
  const chunks = await new Promise<Buffer[]>((resolve, reject) => {
    const kept: Buffer[] = [];
    let size = 0;
    const take = (c: Buffer): void => {
      size += c.length;
      if (size <= limit) return void kept.push(c);
      // The rest is read and dropped, so the client can read the 413 before the connection closes.
      req.off('data', take);
      req.on('data', () => {});
      reject(new ApiError(413, `request body is over the limit of ${limit} bytes`));
    };
    req.on('data', take);
    req.once('end', () => resolve(kept));
    req.once('error', reject);
  });
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  if (depthOf(text, MAX_DEPTH) > MAX_DEPTH) throw new ApiError(400, `request body nests deeper than ${MAX_DEPTH} levels`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ApiError(400, `request body is not JSON: ${(err as Error).message.slice(0, 120)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ApiError(400, 'request body is not a JSON object');
  return value as Record<string, unknown>;
}
