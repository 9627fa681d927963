// The floor for any Node DNS server: returns each query with QR set, no parsing.
import { createSocket } from 'node:dgram';

const socket = createSocket('udp4');
socket.on('message', (msg, rinfo) => {
  msg[2]! |= 0x80;
  socket.send(msg, rinfo.port, rinfo.address);
});
socket.bind(Number(process.argv[2]), '127.0.0.1');
