"""etcd over TLS: when the control plane must dial etcd with TLS credentials.

The client itself is controlplane/storage/etcd_client.EtcdClient (given `tls`).

Used when `--etcd-endpoints` points off this machine (`--etcd-cafile`, `--etcd-certfile`,
`--etcd-keyfile`, as kube-apiserver names them). The embedded etcd listens on loopback
only and is dialled in plain text: nothing off the machine can reach it, and anyone on
the machine who can read its data directory (the control plane's state directory)
needs no network access to it.
"""

from __future__ import annotations

from api.ipport import is_loopback  # noqa: F401  (re-exported: controlplane/main.py asks it of --etcd-endpoints)
