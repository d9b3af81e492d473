"""Image references: the grammar lives in api/imagereference.py (the API server validates
images with it up front; the agent normalises them with it). Re-exported here for the
image package."""

from api.imagereference import (DEFAULT_TAG, DIGEST_RE, DOCKER_HUB, InvalidReference, Reference,  # noqa: F401
                                default_pull_policy, normalize_reference)
