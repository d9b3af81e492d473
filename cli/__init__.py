"""`ctl`: the kubectl-like command line client of Skiff.

Layout (each module opens with what it does):
  main.py        the click group, global options (--server, -n, --config), error reporting
  session.py     per-invocation settings and the bridge from click to the async client
  config.py      the client config file (~/.skiff/config, SKIFF_CONFIG)
  errors.py      one-line error messages worded like kubectl's
  manifests.py   reading -f FILE|DIR|- into documents, with file names and line numbers
  validation.py  checking every document with api/ before anything is written
  resources.py   turning `po,deploy`, `pod/web` and the like into kinds and names
  (AGE formatting, pods' READY/STATUS/RESTARTS and the per-kind table columns are in
  api/printing/, shared with the REST API's Table responses to kubectl)
  printers/      -o formats: table, wide, yaml, json, name, jsonpath, custom-columns; Go's tabwriter
  describe/      `describe` output (pods in kubectl's layout, a generic one otherwise)
  explain.py     `explain` from the kinds' JSON schema
  localcluster.py  `cluster up` / `cluster down`: local control plane processes
  commands/      one module per command family (apply, get, describe, delete, ...)

Layering: cli/ imports only `controlplane.client` and `api`.
"""

from __future__ import annotations

from importlib import metadata

# Register every kind now: importing a single kind module first (api.pod, say) would
# leave api.registry believing the table is loaded with that one kind in it.
import api.kinds  # noqa: F401,E402


def client_version() -> str:
    try:
        return metadata.version("skiff")
    except metadata.PackageNotFoundError:  # run from a source checkout
        return "0.1.0"
