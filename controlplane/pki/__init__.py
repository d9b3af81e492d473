"""The cluster's public key infrastructure: its CA, the certificates it issues, and joining.

- `certs.py`: keys, CSRs and certificates with `cryptography` (no hand-built ASN.1), the
  identity a certificate carries (CN = user, O = groups, as Kubernetes reads it) and the
  CA pin (`sha256:` of the CA's SubjectPublicKeyInfo, kubeadm's `--discovery-token-ca-cert-hash`).
- `ca.py`: the CA and the control plane's own certificates in `<state-dir>/pki`, made on
  first start; the CA key (0600) never leaves that directory.
- `anonymous.py`: the fixed, public client certificate token-only callers present
  (gRPC Python can only require a client certificate or not ask for one; see there).
- `bootstraptoken.py`: join tokens (`abcdef.0123456789abcdef`), stored as Kubernetes'
  bootstrap-token Secrets in kube-system, and their authenticator.
- `nodecerts.py`: the `Bootstrap` gRPC service that signs a node's client and serving
  certificates (join with a token, renew with the node's own certificate) and records the
  address each node's serving certificate was issued for (what the API server dials).
"""
