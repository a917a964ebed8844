#!/usr/bin/env bash
# The dev cluster's PKI, with openssl: one CA; the apiserver's serving certificate
# (named for the bridge address, loopback and the kubernetes Service); client
# certificates for the admin, the control-plane components, the kubelet and
# kube-proxy; the service-account signing key; and a kubeconfig for each client.
# EC P-256 keys: quick to make, and everything in Kubernetes accepts them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
mkdir -p "$PKI"
cd "$PKI"
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }

openssl_cnf() { # openssl_cnf SANS EXTKEYUSAGE
  cat <<CNF
[req]
distinguished_name = dn
[dn]
[ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = $2
${1:+subjectAltName = $1}
CNF
}

# cert NAME SUBJECT EXTKEYUSAGE [SANS]: a key and a certificate signed by the CA.
cert() {
  local name=$1 subj=$2 eku=$3 sans=${4:-}
  key "$name"
  openssl_cnf "$sans" "$eku" >"$name.cnf"
  openssl req -new -key "$name.key" -subj "$subj" -out "$name.csr" -config "$name.cnf" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
    -extfile "$name.cnf" -extensions ext -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.cnf"
}

key ca
openssl req -x509 -new -key ca.key -subj "/CN=mcpauth-dev-cluster-ca" -days 365 -out ca.crt \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

cert apiserver "/CN=kube-apiserver" serverAuth \
  "IP:$BRIDGE_IP,IP:127.0.0.1,IP:$KUBERNETES_SVC_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert kubelet-serving "/CN=$NODE_NAME" serverAuth "IP:$BRIDGE_IP,DNS:$NODE_NAME"
cert admin "/O=system:masters/CN=mcpauth-dev-admin" clientAuth
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
cert controller-manager "/CN=system:kube-controller-manager" clientAuth
cert scheduler "/CN=system:kube-scheduler" clientAuth
cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
cert kube-proxy "/CN=system:kube-proxy" clientAuth
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out sa.key 2>/dev/null
openssl ec -in sa.key -pubout -out sa.pub 2>/dev/null
rm -f ca.srl

# kubeconfig NAME: $STATE/NAME.kubeconfig for the client certificate NAME.
kubeconfig() {
  local name=$1 out=$2
  cat >"$out" <<KC
apiVersion: v1
kind: Config
clusters:
- name: mcpauth-dev
  cluster:
    server: https://$BRIDGE_IP:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 ca.crt)
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 "$name.crt")
    client-key-data: $(base64 -w0 "$name.key")
contexts:
- name: mcpauth-dev
  context: {cluster: mcpauth-dev, user: $name}
current-context: mcpauth-dev
KC
  chmod 600 "$out"
}
kubeconfig admin "$KUBECONFIG_ADMIN"
for c in controller-manager scheduler kubelet kube-proxy; do
  kubeconfig "$c" "$STATE/$c.kubeconfig"
done
