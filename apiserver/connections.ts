// How both of our HTTPS servers (the API and the snapshot registry) treat connections, apart from
// requests: a connection must bring its first request head in time, and Node's parser is fed so
// that a pause holds.
import type { IncomingMessage } from 'node:http';
import type { Server as TlsServer, TLSSocket } from 'node:tls';

const ignore = () => undefined;
const FIRST = Symbol('firstRequestSeen');

/**
 * - Node's HTTP parser reads a TLS connection straight from the TLS layer, which goes on handing
 *   it the rest of a burst after the server paused the connection (it does so when a request's
 *   head arrives while the previous answer is still in the write queue): the parser, paused too,
 *   fails with HPE_PAUSED and the connection is destroyed mid-request. A 'data' listener makes
 *   Node feed it through the socket's stream, whose pause holds (test/connection-reuse.test.ts).
 * - Node cuts a slow request head only once its first byte came, and a TLS handshake after 120 s:
 *   a connection that sends nothing was kept for ever (one client could hold every descriptor).
 *   Go's server, kube-apiserver's, reads the handshake and every request head under its
 *   ReadHeaderTimeout (32 s, k8s.io/apiserver/pkg/server/secure_serving.go): here the handshake
 *   is bounded by `handshakeTimeout` (see `connectionOptions`) and the wait for a first request
 *   by `headTimeoutMs` of silence; after a request, Node's keep-alive timeout closes idle ones.
 */
export function guardConnections(server: TlsServer, headTimeoutMs: number): void {
  server.on('secureConnection', (socket: TLSSocket) => {
    socket.on('data', ignore);
    socket.setTimeout(headTimeoutMs); // Node's own 'timeout' handler destroys a socket with no request
  });
  server.on('request', (req: IncomingMessage) => {
    const socket = req.socket as TLSSocket & { [FIRST]?: true };
    if (socket[FIRST]) return;
    socket[FIRST] = true;
    socket.setTimeout(0); // from here on Node's request and keep-alive timeouts apply
  });
}

/** Options of the TLS server that go with `guardConnections`. */
export const connectionOptions = (headTimeoutMs: number) => ({ handshakeTimeout: headTimeoutMs });
