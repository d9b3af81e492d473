"""The client every component shares: ctl, scheduler, controllers and agents.

`Client` speaks the API server's gRPC verbs and returns plain dicts, or typed
models when given a model class (`await client.get(Pod, "web")`). Errors come
back as `ApiError` subclasses named for what happened (NotFound, Conflict, ...).
"""

from controlplane.client.client import Client, ObjectList, WatchEvent
from controlplane.client.credentials import Credentials
from controlplane.client.errors import (AlreadyExists, ApiError, Conflict, FailedPrecondition, Forbidden, Invalid,
                                        NotFound, TooManyRequests, TooOld, Unauthenticated, Unavailable)

__all__ = ["Client", "ObjectList", "WatchEvent", "ApiError", "NotFound", "AlreadyExists", "Conflict", "Invalid",
           "FailedPrecondition", "Forbidden", "TooManyRequests", "TooOld", "Unavailable", "Unauthenticated", "Credentials"]
