"""Limits every component agrees on."""

# The largest object the API server stores (etcd's default request limit is 1.5 MiB).
MAX_OBJECT_BYTES = 1536 * 1024
