// The names and numbers shared by `deploy/`, `apiservice.yaml`, `npm run apiservice`
// (cli/apiservice.ts) and the test that checks the manifests (test/deploy.test.ts).
// The YAML files cannot import this module; the test holds them to it.
import { GROUP, VERSION } from '../kinds/common.js';

/** The namespace everything namespaced lives in. */
export const NAMESPACE = 'ocm-system';
/** Deployment, Service, ServiceAccount and the `app.kubernetes.io/name` label share this name. */
export const APP_NAME = 'ocm-apiserver';
export const DEPLOYMENT_NAME = APP_NAME;
export const SERVICE_NAME = APP_NAME;
export const SERVICE_ACCOUNT = APP_NAME;
export const CONTAINER_NAME = APP_NAME;
/** Labels on the pod template; the Deployment's selector and the Service's selector. */
export const SELECTOR_LABELS: Readonly<Record<string, string>> = { 'app.kubernetes.io/name': APP_NAME };

/** Placeholder image until a release pipeline publishes one. */
export const IMAGE = 'ghcr.io/open-component-model/ocm-apiserver:latest';
export const COMMAND: readonly string[] = ['node', 'dist/cli/server.js'];

/** Service ports and the container ports they lead to. */
export const HTTPS_PORT_NAME = 'https';
export const HTTPS_SERVICE_PORT = 443;
export const HTTPS_CONTAINER_PORT = 8443;
export const REGISTRY_PORT_NAME = 'registry';
export const REGISTRY_PORT = 5001;

/** Mount points inside the container; also the server's `--data-dir` and `--cert-dir`. */
export const DATA_DIR = '/data';
export const CERT_DIR = '/certs';
export const DATA_PVC = 'ocm-apiserver-data';
export const DATA_PVC_SIZE = '10Gi';

/** The server's flags in the Deployment. */
export const SERVER_ARGS: readonly string[] = [
  '--mode=aggregated',
  '--bind=0.0.0.0',
  `--port=${HTTPS_CONTAINER_PORT}`,
  `--registry-port=${REGISTRY_PORT}`,
  `--data-dir=${DATA_DIR}`,
  `--cert-dir=${CERT_DIR}`,
];

/** Health endpoints served without authentication on the HTTPS port. */
export const READINESS_PATH = '/readyz';
export const LIVENESS_PATH = '/livez';

/** The Secret holding the key material, mounted at CERT_DIR. */
export const CERTS_SECRET = 'ocm-apiserver-certs';
/**
 * Files `ensureCerts` (certs/index.ts) writes and the server needs at least. The Secret carries
 * every `*.crt` and `*.key` of the cert dir, one key each, so it follows ensureCerts as it grows.
 */
export const CERT_FILES_REQUIRED: readonly string[] = ['ca.crt', 'ca.key', 'server.crt', 'server.key', 'admin.crt', 'admin.key'];
/** A `kubernetes.io/tls` Secret must carry these two keys; they hold the serving pair. */
export const CERT_FILE_PATTERN = /\.(crt|key)$/;
export const TLS_SECRET_KEYS: Readonly<Record<string, string>> = { 'tls.crt': 'server.crt', 'tls.key': 'server.key' };

/** The APIService registering the group with the aggregator. */
export const API_GROUP = GROUP;
export const API_VERSION = VERSION;
export const APISERVICE_NAME = `${VERSION}.${GROUP}`;
export const GROUP_PRIORITY_MINIMUM = 1000;
export const VERSION_PRIORITY = 15;
/** The caBundle in the committed apiservice.yaml (base64 of this text); `npm run apiservice` replaces it. */
export const CA_BUNDLE_PLACEHOLDER = Buffer.from('PLACEHOLDER: render with npm run apiservice').toString('base64');

/** RBAC object names. */
export const RBAC = {
  /** ClusterRoleBinding to `system:auth-delegator` (TokenReviews, SubjectAccessReviews). */
  authDelegatorBinding: 'ocm-apiserver:system:auth-delegator',
  authDelegatorClusterRole: 'system:auth-delegator',
  /** RoleBinding in kube-system to read the ConfigMap `extension-apiserver-authentication`. */
  authReaderBinding: 'ocm-apiserver-auth-reader',
  authReaderRole: 'extension-apiserver-authentication-reader',
  authReaderNamespace: 'kube-system',
  /** The server's own ClusterRole and its ClusterRoleBinding. */
  clusterRole: 'ocm-apiserver',
  clusterRoleBinding: 'ocm-apiserver',
} as const;
