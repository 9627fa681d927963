import { request, type IncomingHttpHeaders } from 'node:http';

/** Where the daemon listens unless told otherwise (`tsnet --socket`, a CNI config's `socket`). */
export const DEFAULT_SOCKET = '/run/tsnet/tsnet.sock';

/** An error reply from the daemon, with its status and message. */
export class ControlError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The daemon's socket could not be reached (no daemon, or not yet): a caller may try again later. */
export class UnreachableError extends Error {}

/** One JSON request to the daemon over its Unix socket. */
export function call<T>(socketPath: string, method: string, path: string, body?: unknown, onHeaders?: (headers: IncomingHttpHeaders) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request({ socketPath, method, path, headers: payload === undefined ? {} : { 'Content-Type': 'application/json' } }, (res) => {
      onHeaders?.(res.headers);
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown = null;
        try {
          json = text.trim() === '' ? null : JSON.parse(text);
        } catch {
          // Thrown here it would escape the promise (an event handler) and end the process.
          if ((res.statusCode ?? 500) < 400) return reject(new Error(`the tsnet daemon at ${socketPath} answered ${method} ${path} with what is not JSON: ${JSON.stringify(text.slice(0, 80))}`));
        }
        if ((res.statusCode ?? 500) >= 400) reject(new ControlError(res.statusCode ?? 500, (json as { message?: string } | null)?.message ?? text));
        else resolve(json as T);
      });
    });
    req.on('error', (err) => reject(new UnreachableError(`cannot reach the tsnet daemon at ${socketPath}: ${err.message}`, { cause: err })));
    req.end(payload);
  });
}
