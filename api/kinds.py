"""Imports every built-in kind so that each registers itself. Add new kinds here."""

from api import configmap, event, lease, namespace, secret  # noqa: F401
from api import rbac, serviceaccount  # noqa: F401
from api import pod, node, replicaset, deployment, daemonset, job, service  # noqa: F401
from api import endpoints, endpointslice  # noqa: F401
from api import storage, statefulset  # noqa: F401
from api import cronjob, resourcequota, poddisruptionbudget, horizontalpodautoscaler  # noqa: F401
