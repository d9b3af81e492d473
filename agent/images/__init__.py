"""Container images on a node: registry client, content-addressed store, safe layer unpacking.

The runtime and the agent use `ImageStore` (pull with a pull policy, import
archives, list, remove, garbage-collect) and get `Image`s whose `layers` are
directories ready to stack with overlayfs. Modules, from the outside in:

* store.py      — ImageStore, the front door
* registry.py   — OCI Distribution API client (auth.py: credentials and tokens,
                  mirrors.py: registry mirror config, platform.py: index choice)
* archive.py    — OCI layout and `docker save` archives
* catalog.py, blobs.py, layers.py — what is stored where on disk
* unpack.py, decompress.py — turning a layer tarball into a directory, safely
* manifest.py, reference.py, digest.py — the formats and names
"""

from agent.images.auth import RegistryAuth
from agent.images.errors import ArchiveError, DigestMismatch, ImageError, LayerError, PullError, RegistryError
from agent.images.image import Image
from agent.images.manifest import ImageConfig
from agent.images.mirrors import MirrorConfig
from agent.images.platform import Platform
from agent.images.reference import InvalidReference, Reference, default_pull_policy, normalize_reference
from agent.images.store import ImageNotFound, ImageStore, PullStats
from agent.images.unpack import UnpackLimits

__all__ = [
    "ArchiveError", "DigestMismatch", "Image", "ImageConfig", "ImageError", "ImageNotFound", "ImageStore",
    "InvalidReference", "LayerError", "MirrorConfig", "Platform", "PullError", "PullStats", "Reference",
    "RegistryAuth", "RegistryError", "UnpackLimits", "default_pull_policy", "normalize_reference",
]
