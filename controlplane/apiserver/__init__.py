"""The API server: gRPC verbs over every kind, backed by controlplane.storage.

- `service.ApiService`: the gRPC servicer — thin: decode, call, encode, map errors.
- `handlers.Handlers`: the generic verbs (create, get, list, update, status,
  delete, apply, bind, watch) that work for any registered kind.
- `strategy`: what differs per kind (pods get a Pending status on create, are
  deleted gracefully, and keep most of their spec immutable).
- `apply`: kubectl's three-way merge for `ctl apply`.
- `fieldmanager`: managedFields and server-side apply (field owners, conflicts).
- `events`: expiring Events via shared etcd leases.
"""
