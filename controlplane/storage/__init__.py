"""Storage of API objects in etcd.

`keys` lays out one key per object under one prefix per resource type,
`store.Store` does reads and compare-and-swap writes (resourceVersion is the
key's etcd mod_revision), and `watch_cache.WatchCache` holds one etcd watch
per resource type and fans its events out to any number of API watchers.
Nothing but the API server uses this package.
"""

from controlplane.storage.errors import (AlreadyExists, Conflict, NotFound, StorageError, TooOld, Unavailable)
from controlplane.storage.store import Store

__all__ = ["Store", "StorageError", "NotFound", "AlreadyExists", "Conflict", "TooOld", "Unavailable"]
