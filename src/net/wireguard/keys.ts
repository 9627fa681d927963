import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';

/**
 * WireGuard keys: Curve25519, base64 of 32 bytes as `wg` writes them. Made by Node's X25519, so
 * no `wg genkey` runs; `wg` and wireguard-go clamp the scalar themselves, so Node's unclamped
 * scalar gives the same public key (checked against `wg pubkey`).
 */

/** 32 bytes in base64: 43 characters and one `=`; the last character carries only 4 bits. */
const KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw480]=$/;

/** Whether `v` is a key as `wg` reads one: the only form a key from the store may reach `wg` in. */
export const isWgKey = (v: unknown): v is string => typeof v === 'string' && KEY.test(v);

/** PKCS#8 DER of an X25519 private key, less its 32 bytes (RFC 8410). */
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** A new private key, base64. */
export function generatePrivateKey(): string {
  const { privateKey } = generateKeyPairSync('x25519');
  return Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url').toString('base64');
}

/** The public key of a private one, base64. */
export function publicKeyOf(privateKey: string): string {
  if (!isWgKey(privateKey)) throw new Error('wireguard/keys: not a base64 32-byte key');
  const der = Buffer.concat([PKCS8_PREFIX, Buffer.from(privateKey, 'base64')]);
  const pub = createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }));
  return Buffer.from(pub.export({ format: 'jwk' }).x!, 'base64url').toString('base64');
}

/**
 * Writes `privateKey` to `path`, 0600 from the start (written to a new file beside it, then
 * renamed over, so a crash leaves the old key or the new one, never half of one).
 */
export function writeKeyFile(path: string, privateKey: string): void {
  const tmp = `${path}.new`;
  // One left by a crash may have other permissions: `mode` applies only to a file being created.
  rmSync(tmp, { force: true });
  writeFileSync(tmp, `${privateKey}\n`, { mode: 0o600, flag: 'w' });
  renameSync(tmp, path);
}

/** The private key kept at `path`, made there on first use; it never leaves this file and this process. */
export function loadOrCreateKey(path: string): string {
  if (existsSync(path)) {
    const key = readFileSync(path, 'utf8').trim();
    if (!isWgKey(key)) throw new Error(`wireguard/keys: ${path} holds no WireGuard private key`);
    return key;
  }
  const key = generatePrivateKey();
  writeKeyFile(path, key);
  return key;
}
