"""The one exception of the cgroup layer.

Every failure of a cgroup operation becomes a `CgroupError` whose message names
the file and, for writes, the value written, so a log line is enough to see what
went wrong (`writing "104857600" to /sys/fs/cgroup/memory/skiff/pod-x/memory.limit_in_bytes:
Device or resource busy`). `fsio.py` produces most of them; the drivers add their own
for bad paths, missing controllers and groups that will not empty.
"""

from __future__ import annotations


class CgroupError(Exception):
    """A cgroup file could not be read or written, or a group could not be set up or removed."""
