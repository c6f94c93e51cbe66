// The one client to "the cluster": the real kube-apiserver in aggregated mode, this same server
// over HTTPS in standalone mode. Reconcilers and the delegated authn/authz go through it.
import { createHash } from 'node:crypto';
import https from 'node:https';
import * as k8s from '@kubernetes/client-node';
import type { Attributes, UserInfo } from '../../apiserver/auth.js';

export interface AuthenticationConfig {
  clientCA?: string;
  requestHeaderCA?: string;
  allowedNames: string[];
  usernameHeaders: string[];
  groupHeaders: string[];
  extraHeaderPrefixes: string[];
}

const list = (v: string | undefined): string[] => {
  if (!v) return [];
  try {
    const parsed = JSON.parse(v);
    return Array.isArray(parsed) ? parsed.map(String) : [String(parsed)];
  } catch {
    return v.split(',').map((s) => s.trim()).filter(Boolean);
  }
};

type RequestContext = Parameters<k8s.KubeConfig['applySecurityAuthentication']>[0];

/** @kubernetes/client-node 1.x gives every request a new https.Agent: a new TLS connection, secure
 * context and handshake each time (most of the reconcilers' CPU under load). This keeps one
 * keep-alive agent per distinct TLS setting instead. */
class PooledKubeConfig extends k8s.KubeConfig {
  private readonly agents = new Map<string, https.Agent>();

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const fresh = context.getAgent();
    if (!(fresh instanceof https.Agent)) return;
    const o = fresh.options;
    const h = createHash('sha256');
    for (const v of [o.ca, o.cert, o.key, o.pfx, o.passphrase, o.rejectUnauthorized, o.servername].flat()) h.update(Buffer.isBuffer(v) ? v : `${JSON.stringify(v ?? null)}`).update('\0');
    const key = h.digest('hex');
    let agent = this.agents.get(key);
    if (!agent) {
      agent = new https.Agent({ ...o, keepAlive: true });
      this.agents.set(key, agent);
    }
    context.setAgent(agent);
  }
}

export class HostCluster {
  readonly core: k8s.CoreV1Api;
  readonly authn: k8s.AuthenticationV1Api;
  readonly authz: k8s.AuthorizationV1Api;
  readonly objects: k8s.KubernetesObjectApi;
  readonly coordination: k8s.CoordinationV1Api;

  constructor(readonly kubeconfig: k8s.KubeConfig) {
    this.core = kubeconfig.makeApiClient(k8s.CoreV1Api);
    this.authn = kubeconfig.makeApiClient(k8s.AuthenticationV1Api);
    this.authz = kubeconfig.makeApiClient(k8s.AuthorizationV1Api);
    this.objects = k8s.KubernetesObjectApi.makeApiClient(kubeconfig);
    this.coordination = kubeconfig.makeApiClient(k8s.CoordinationV1Api);
  }

  /** From a kubeconfig file, or the pod's service account when none is given. */
  static load(file?: string): HostCluster {
    const kc = new PooledKubeConfig();
    if (file) kc.loadFromFile(file);
    else kc.loadFromCluster();
    return new HostCluster(kc);
  }

  /** kube-system/extension-apiserver-authentication, whose list values are JSON arrays. */
  async authenticationConfig(): Promise<AuthenticationConfig> {
    const cm = await this.core.readNamespacedConfigMap({ namespace: 'kube-system', name: 'extension-apiserver-authentication' });
    const d = cm.data ?? {};
    return {
      clientCA: d['client-ca-file'],
      requestHeaderCA: d['requestheader-client-ca-file'],
      allowedNames: list(d['requestheader-allowed-names']),
      usernameHeaders: list(d['requestheader-username-headers']),
      groupHeaders: list(d['requestheader-group-headers']),
      extraHeaderPrefixes: list(d['requestheader-extra-headers-prefix']),
    };
  }

  async tokenReview(token: string): Promise<UserInfo | undefined> {
    const r = await this.authn.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } } });
    const u = r.status?.user;
    if (!r.status?.authenticated || !u?.username) return undefined;
    return { name: u.username, uid: u.uid, groups: u.groups ?? [], extra: u.extra };
  }

  async subjectAccessReview(a: Attributes): Promise<{ allowed: boolean; reason?: string }> {
    const r = await this.authz.createSubjectAccessReview({
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user: a.user.name,
          uid: a.user.uid,
          groups: a.user.groups,
          extra: a.user.extra,
          ...(a.resourceRequest
            ? { resourceAttributes: { verb: a.verb, group: a.apiGroup, version: a.apiVersion, resource: a.resource, subresource: a.subresource, namespace: a.namespace, name: a.name } }
            : { nonResourceAttributes: { verb: a.verb, path: a.path } }),
        },
      },
    });
    return { allowed: !!r.status?.allowed && !r.status?.denied, reason: r.status?.reason };
  }
}
