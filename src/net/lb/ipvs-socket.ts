import koffi from 'koffi';
import { bind, check, close, recv, send, setsockopt, SOCK_CLOEXEC, SOL_SOCKET, socket } from '../../netns/libc.js';
import { decodeDestination, decodeService, IPVS_GENL_NAME, IpvsCmd, ipvsRequest, type IpvsDestination, type IpvsService } from './ipvs.js';
import { genlMessage, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, parseAttrs, splitMessages, str } from './netlink.js';

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const NETLINK_GENERIC = 16;
const SO_RCVTIMEO = 20;
const GENL_ID_CTRL = 0x10;
const CTRL_CMD_GETFAMILY = 3;
const CTRL_ATTR_FAMILY_ID = 1;
const CTRL_ATTR_FAMILY_NAME = 2;
const ENOENT = 2;

/**
 * An IPVS client over a generic-netlink socket (made through koffi: Node has no AF_NETLINK).
 * `open()` fails with a clear error on a kernel without IPVS, so callers fall back to nftables.
 */
export class IpvsClient {
  #seq = 1;
  private constructor(
    readonly fd: number,
    readonly family: number,
  ) {}

  static open(): IpvsClient {
    const fd = check(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC), 'lb/ipvs: netlink socket');
    try {
      const sa = Buffer.alloc(12);
      sa.writeUInt16LE(AF_NETLINK, 0);
      check(bind(fd, sa, sa.length), 'lb/ipvs: bind netlink socket');
      const timeout = new BigInt64Array([1n, 0n]); // struct timeval { 1 s, 0 µs }: replies are immediate
      check(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, new Int32Array(timeout.buffer), 16), 'lb/ipvs: SO_RCVTIMEO');
      const probe = new IpvsClient(fd, GENL_ID_CTRL);
      const replies = probe.#exchange(genlMessage({ family: GENL_ID_CTRL, cmd: CTRL_CMD_GETFAMILY, version: 1, flags: NLM_F_REQUEST, seq: probe.#seq++, attrs: [str(CTRL_ATTR_FAMILY_NAME, IPVS_GENL_NAME)] }));
      const id = parseAttrs(replies[0]!.subarray(4)).get(CTRL_ATTR_FAMILY_ID)?.readUInt16LE(0);
      if (id === undefined) throw new Error('lb/ipvs: the controller did not say the IPVS family id');
      return new IpvsClient(fd, id);
    } catch (err) {
      close(fd);
      if ((err as { errno?: number }).errno === ENOENT) {
        throw new Error('lb/ipvs: this kernel has no IPVS (generic netlink family "IPVS" not found; CONFIG_IP_VS is unset): use the nftables backend', { cause: err });
      }
      throw err;
    }
  }

  newService(s: IpvsService): void {
    this.#exchange(ipvsRequest({ family: this.family, seq: this.#seq++, cmd: IpvsCmd.NEW_SERVICE, service: s }));
  }

  delService(s: IpvsService): void {
    this.#exchange(ipvsRequest({ family: this.family, seq: this.#seq++, cmd: IpvsCmd.DEL_SERVICE, service: s }));
  }

  /** Adds a destination, or changes its weight (0 drains it). */
  setDestination(s: IpvsService, d: IpvsDestination, exists: boolean): void {
    this.#exchange(ipvsRequest({ family: this.family, seq: this.#seq++, cmd: exists ? IpvsCmd.SET_DEST : IpvsCmd.NEW_DEST, service: s, dest: d }));
  }

  delDestination(s: IpvsService, d: IpvsDestination): void {
    this.#exchange(ipvsRequest({ family: this.family, seq: this.#seq++, cmd: IpvsCmd.DEL_DEST, service: s, dest: d }));
  }

  services(): IpvsService[] {
    return this.#exchange(ipvsRequest({ family: this.family, seq: this.#seq++, cmd: IpvsCmd.GET_SERVICE, dump: true })).map(decodeService);
  }

  destinations(s: IpvsService): IpvsDestination[] {
    return this.#exchange(ipvsRequest({ family: this.family, seq: this.#seq++, cmd: IpvsCmd.GET_DEST, service: s, dump: true })).map(decodeDestination);
  }

  close(): void {
    close(this.fd);
  }

  /** Sends one request and reads until its ACK, error or end of dump; returns the data payloads. */
  #exchange(msg: Buffer): Buffer[] {
    check(Number(send(this.fd, msg, msg.length, 0)), 'lb/ipvs: send');
    const seq = msg.readUInt32LE(8);
    const dump = (msg.readUInt16LE(6) & NLM_F_DUMP) === NLM_F_DUMP;
    const out: Buffer[] = [];
    for (;;) {
      const buf = Buffer.alloc(65536);
      const n = Number(recv(this.fd, buf, buf.length, 0));
      if (n < 0) throw new Error(`lb/ipvs: no reply from the kernel (errno ${koffi.errno()})`);
      for (const m of splitMessages(buf.subarray(0, n))) {
        if (m.seq !== seq) continue;
        if (m.type === NLMSG_ERROR) {
          const errno = -m.payload.readInt32LE(0);
          if (errno === 0) return out;
          throw Object.assign(new Error(`lb/ipvs: the kernel refused the request (errno ${errno})`), { errno });
        }
        if (m.type === NLMSG_DONE) return out;
        out.push(m.payload);
        if (!dump) return out;
      }
    }
  }
}
