"""Limits every component agrees on."""

# The largest object the API server stores (etcd's default request limit is 1.5 MiB).
MAX_OBJECT_BYTES = 1536 * 1024

# Replicas are int32 in Kubernetes' API; more is refused by name, never attempted.
MAX_REPLICAS = 2**31 - 1
# The largest CPU amount a cgroup can be given: 1,000,000 cores. A limit becomes a CFS
# quota of cores x 100,000 us per period, and the kernel caps a quota near 2^44 us.
MAX_CPU_MILLIS = 10**9
# The largest byte amount (memory, ephemeral-storage, hugepages): Kubernetes' int64
# quantities, and about what a cgroup's page counter holds (memory.max).
MAX_BYTES = 2**63 - 1
