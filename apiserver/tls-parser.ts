// One workaround for Node's HTTPS server, used by both of ours (the API and the snapshot registry).
import type { Server as TlsServer, TLSSocket } from 'node:tls';

const ignore = () => undefined;

/**
 * Node's HTTP parser reads a TLS connection straight from the TLS layer, which goes on handing it
 * the rest of a burst after the server paused the connection (it does so when a request's head
 * arrives while the previous answer is still in the write queue): the parser, paused too, fails
 * with HPE_PAUSED and the connection is destroyed mid-request (test/connection-reuse.test.ts).
 * A 'data' listener makes Node feed the parser through the socket's stream, whose pause holds.
 */
export function parseThroughStreams(server: TlsServer): void {
  server.on('secureConnection', (socket: TLSSocket) => socket.on('data', ignore));
}
