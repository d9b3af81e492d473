"""Limits every component agrees on."""

from collections.abc import Iterable

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

# The deepest nesting of maps and lists an object may have. Real manifests nest less than
# 20 levels; a limit well below Python's recursion limit means a hostile 10,000-level
# document is refused by name (client and server) instead of ending in a RecursionError.
MAX_NESTING = 100

# The most `ctl` reads from one -f source (a file or stdin) before parsing it: several
# objects of up to MAX_OBJECT_BYTES each, not a 50 MB file parsed for 20 s to be refused.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024


def nesting_depth(obj: object, limit: int = MAX_NESTING) -> int:
    """How deeply maps and lists nest in `obj` (a scalar is 0), counting no further than limit + 1."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        children: Iterable[object]
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        if depth > limit:
            return depth
        stack.extend((child, depth + 1) for child in children)
    return deepest


def json_too_deep(text: bytes | str, parsed: object, limit: int = MAX_NESTING) -> bool:
    """Whether a decoded JSON document nests maps and lists more than `limit` levels deep.

    Each level opens with a `{` or `[`, so a document with no more than `limit` of them
    cannot be too deep, whatever its shape; that count (brackets inside strings included,
    which only errs towards walking) is a fast C scan, and settles it for nearly every
    object the API server decodes (a pod has a dozen). Only the rest is walked."""
    if isinstance(text, bytes):
        opening = text.count(b"{") + text.count(b"[")
    else:
        opening = text.count("{") + text.count("[")
    if opening <= limit:
        return False
    return nesting_depth(parsed, limit) > limit
