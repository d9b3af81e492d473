"""The Kubernetes REST API on the API server, so the real `kubectl` (and client-go, the
Python `kubernetes` client, editors' plugins) can use a Skiff cluster.

- server.py: the aiohttp application on the API server's event loop: HTTPS with the
  cluster CA, authentication (client certificates, bearer tokens) and the routes;
- resources.py: the object verbs on Kubernetes' URLs (and pods/log, deletecollection), calling the same
  authorized verbs as the gRPC servicer (controlplane/apiserver/verbs.py): one copy of each;
- reviews.py: `kubectl auth can-i` / `whoami` (self reviews);
- table.py: Table responses with `ctl get`'s columns (api/printing); scale.py: the scale subresource;
- discovery.py: /version, /api, /apis and the APIResourceLists, from api/registry.py;
- openapi.py: OpenAPI v3 documents generated from the pydantic models (api/);
- patch.py: JSON merge patch, strategic merge patch, JSON patch;
- streams.py: pods/exec (WebSocket channels) and pods/portforward (spdy.py: SPDY/3.1 in a WebSocket);
- protobuf.py: the Kubernetes protobuf bodies kubectl's typed clients send, read by field number;
- fieldvalidation.py: fieldValidation Strict/Warn/Ignore;
- status.py: errors as `kind: Status` objects, as kubectl prints them.
"""
