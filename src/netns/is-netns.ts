import { closeSync, constants, openSync, statSync } from 'node:fs';
import { CLONE_NEWNET, ioctl } from './libc.js';

/** ioctl(NS_GET_NSTYPE): the CLONE_NEW* type of the namespace a nsfs file descriptor refers to. */
const NS_GET_NSTYPE = 0xb703;

/**
 * Why `path` is not a network namespace one can adopt, or undefined if it is one. Only files on
 * nsfs are opened (never a FIFO or a device, whose open could block or act), then the kernel is
 * asked the namespace's type.
 */
export function notNetns(path: string): string | undefined {
  if (!path.startsWith('/')) return 'is not an absolute path';
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`;
  }
  if (!st.isFile() || st.dev !== statSync('/proc/self/ns/net').dev) return 'is not a namespace (not a file on nsfs)';
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    return ioctl(fd, NS_GET_NSTYPE, null) === CLONE_NEWNET ? undefined : 'is a namespace of another kind, not a network namespace';
  } finally {
    closeSync(fd);
  }
}
