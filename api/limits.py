"""Limits every component agrees on."""

# The largest object the API server stores (etcd's default request limit is 1.5 MiB).
MAX_OBJECT_BYTES = 1536 * 1024

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
