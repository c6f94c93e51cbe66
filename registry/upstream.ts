// Where a client acting for a user may connect (issue 16, server-side request forgery): the
// address each host name resolves to is checked at connect time (a `lookup` hook, so a second
// resolution cannot swap it), and IP literals before the request. Never: link-local (cloud
// metadata at 169.254.169.254), unspecified, multicast, nor this server's own ports on a local
// address. Loopback and private ranges only with --allow-private-upstreams (on-premises registries).
import dns, { type LookupAddress } from 'node:dns';
import net from 'node:net';
import os from 'node:os';

export interface UpstreamPolicy {
  /** Allow loopback and private (RFC 1918, ULA, CGNAT) addresses. */
  allowPrivate?: boolean;
  /** This server's own ports (API, registry): refused on any local address, whatever allowPrivate says. */
  ownPorts?: number[];
}

const never = new net.BlockList();
never.addSubnet('0.0.0.0', 8, 'ipv4');
never.addSubnet('169.254.0.0', 16, 'ipv4');
never.addSubnet('224.0.0.0', 4, 'ipv4');
never.addSubnet('240.0.0.0', 4, 'ipv4');
never.addAddress('::', 'ipv6');
never.addSubnet('fe80::', 10, 'ipv6');
never.addSubnet('ff00::', 8, 'ipv6');

const privateNets = new net.BlockList();
privateNets.addSubnet('127.0.0.0', 8, 'ipv4');
privateNets.addSubnet('10.0.0.0', 8, 'ipv4');
privateNets.addSubnet('172.16.0.0', 12, 'ipv4');
privateNets.addSubnet('192.168.0.0', 16, 'ipv4');
privateNets.addSubnet('100.64.0.0', 10, 'ipv4');
privateNets.addAddress('::1', 'ipv6');
privateNets.addSubnet('fc00::', 7, 'ipv6');

const loopback = new net.BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

/** `::ffff:10.0.0.1` is 10.0.0.1. */
function plain(address: string): { address: string; type: 'ipv4' | 'ipv6' } {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (m) return { address: m[1], type: 'ipv4' };
  return { address, type: net.isIPv6(address) ? 'ipv6' : 'ipv4' };
}

function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) for (const i of list ?? []) out.add(plain(i.address).address);
  return out;
}

/** Why connecting to `address:port` is refused under the policy; undefined when it is allowed. */
export function upstreamProblem(policy: UpstreamPolicy, address: string, port: number): string | undefined {
  const a = plain(address);
  if (!net.isIP(a.address)) return `${address} is not an IP address`;
  if (never.check(a.address, a.type)) return `${a.address} is a link-local, multicast or unspecified address`;
  const local = loopback.check(a.address, a.type) || localAddresses().has(a.address);
  if (local && policy.ownPorts?.includes(port)) return `${a.address}:${port} is this server itself`;
  if (!policy.allowPrivate && (local || privateNets.check(a.address, a.type))) return `${a.address} is a loopback or private address (the server allows those only with --allow-private-upstreams)`;
  return undefined;
}

export class UpstreamForbidden extends Error {
  readonly code = 'ERR_UPSTREAM_FORBIDDEN';
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** A `lookup` for http(s).request that refuses addresses the policy does not allow. */
export function guardedLookup(policy: UpstreamPolicy, port: number) {
  return (hostname: string, options: dns.LookupOptions, callback: LookupCallback) => {
    dns.lookup(hostname, { ...options }, (err, address: string | LookupAddress[], family?: number) => {
      if (err) return callback(err, address, family);
      const list = Array.isArray(address) ? address : [{ address, family: family ?? 4 }];
      for (const a of list) {
        const why = upstreamProblem(policy, a.address, port);
        if (why) return callback(new UpstreamForbidden(`${hostname} resolves to ${why}`), address, family);
      }
      callback(null, address, family);
    });
  };
}
