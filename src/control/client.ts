import { request, type IncomingHttpHeaders } from 'node:http';

/** An error reply from the daemon, with its status and message. */
export class ControlError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

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
        const json = text.trim() === '' ? null : (JSON.parse(text) as unknown);
        if ((res.statusCode ?? 500) >= 400) reject(new ControlError(res.statusCode ?? 500, (json as { message?: string } | null)?.message ?? text));
        else resolve(json as T);
      });
    });
    req.on('error', (err) => reject(new Error(`cannot reach the tsnet daemon at ${socketPath}: ${err.message}`, { cause: err })));
    req.end(payload);
  });
}
