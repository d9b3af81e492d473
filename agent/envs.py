"""A container's command line and environment, with Kubernetes' rules.

The pod worker calls these two just before it builds a ContainerSpec
(agent/containerspec.py); they join what the image says (its config's
Entrypoint, Cmd and Env, from agent/images) with what the pod says.

Command line (`command_line`): `command` replaces the image's ENTRYPOINT and
`args` replaces its CMD. Setting `command` alone drops the image's CMD too,
exactly as Kubernetes does. `$(VAR)` in command and args expands to the
variable's value; `$$(VAR)` is an escape for a literal `$(VAR)`; an unknown
`$(VAR)` stays as it is.

Environment (`resolve_env`), in order, later entries overriding earlier ones:
1. the runtime's defaults: PATH (only when the image sets none) and HOSTNAME,
   as Docker and containerd add them (`default_path_env`);
2. the image's Env;
3. Service variables (`service_env`) for the Services that exist when the
   container starts: those of the pod's namespace unless the pod sets
   `enableServiceLinks: false`, and always `kubernetes` of `default`;
4. `envFrom`: every key of a ConfigMap or Secret, with an optional prefix;
5. `env`, in order: a `value` (where `$(VAR)` may refer to variables defined
   by 3., 4. and by earlier entries of 5. - not to the image's, as in Kubernetes),
   or a `valueFrom` reference to a ConfigMap key, Secret key, pod field or
   container resource (agent/downward.py).

A reference that cannot be resolved raises `ConfigError` with Kubernetes' own
message; the pod worker shows it as the container's waiting reason
CreateContainerConfigError. References marked `optional` are skipped instead.
"""

from __future__ import annotations

import base64
import binascii
import logging
import socket
from collections import ChainMap
from typing import Any, Callable, Iterable, Mapping

from agent.downward import DownwardError, field_value, find_container, resource_value

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Look up an object of the pod's namespace by name: its JSON form, or None when there is none.
ObjectGetter = Callable[[str], dict[str, Any] | None]


class ConfigError(Exception):
    """The container cannot be configured (a missing ConfigMap, Secret or key, no command)."""

    reason = "CreateContainerConfigError"


# ---- $(VAR) expansion ----

def expand(text: str, variables: Mapping[str, str]) -> str:
    """Kubernetes' expansion of `$(VAR)` (third_party/forked/golang/expansion).

    `$(NAME)` becomes the value of NAME, or stays `$(NAME)` when NAME is unknown;
    `$$` becomes `$` (so `$$(NAME)` is a literal `$(NAME)`); any other `$` is kept.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$" or i + 1 == len(text):
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":                       # escaped operator
            out.append("$")
            i += 2
        elif following == "(":
            close = text.find(")", i + 2)
            if close == -1:                        # unterminated: keep as written
                out.append("$(")
                i += 2
            else:
                name = text[i + 2:close]
                out.append(variables[name] if name in variables else f"$({name})")
                i = close + 1
        else:                                      # a lone "$"
            out.append("$" + following)
            i += 2
    return "".join(out)


# ---- command line ----

def command_line(container: dict[str, Any], image_entrypoint: list[str] | None, image_cmd: list[str] | None,
                 env: dict[str, str]) -> list[str]:
    """The argv to run: command/args from the pod (with $(VAR) expanded) over the image's ENTRYPOINT/CMD."""
    command = [expand(part, env) for part in container.get("command") or []]
    args = [expand(part, env) for part in container.get("args") or []]
    if command:
        argv = command + args                       # the image's CMD is not used
    else:
        argv = list(image_entrypoint or []) + (args or list(image_cmd or []))
    if not argv:
        raise ConfigError("no command specified")
    return argv


# ---- environment ----

def pod_hostname(pod: dict[str, Any]) -> str:
    """The pod's host name: spec.hostname, else its name cut to 63 characters (Kubernetes' rule);
    the node's own name with hostNetwork."""
    spec = pod.get("spec") or {}
    if spec.get("hostNetwork"):
        return socket.gethostname()
    name = spec.get("hostname") or (pod.get("metadata") or {}).get("name", "")
    return name[:63].rstrip("-.") if len(name) > 63 else name


def default_path_env(image_env: list[str], *, hostname: str) -> dict[str, str]:
    """The runtime's base environment: PATH (when the image has none), HOSTNAME, then the image's Env."""
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname}   # the image's own PATH replaces the default
    for item in image_env:
        name, _, value = item.partition("=")
        if name:
            env[name] = value
    return env


def _decode_secret_data(secret: dict[str, Any]) -> dict[str, str]:
    name = (secret.get("metadata") or {}).get("name", "")
    decoded = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            decoded[key] = base64.b64decode(value, validate=True).decode(errors="replace")
        except (binascii.Error, ValueError):
            raise ConfigError(f"secret {name!r}: data[{key}] is not valid base64") from None
    return decoded


def _env_from(source: dict[str, Any], *, get_configmap: ObjectGetter, get_secret: ObjectGetter,
              namespace: str) -> dict[str, str]:
    """The variables one envFrom entry contributes (empty when its optional object is missing)."""
    prefix = source.get("prefix") or ""
    if source.get("configMapRef") is not None:
        ref, kind = source["configMapRef"], "configmap"
        obj = get_configmap(ref["name"])
        data = (obj or {}).get("data") or {}
    else:
        ref, kind = source["secretRef"], "secret"
        obj = get_secret(ref["name"])
        data = _decode_secret_data(obj) if obj is not None else {}
    if obj is None:
        if ref.get("optional"):
            return {}
        raise ConfigError(f'{kind} "{ref["name"]}" not found')
    variables, skipped = {}, []
    for key, value in data.items():
        name = prefix + key
        if not name or "=" in name or not name.isprintable():
            skipped.append(key)
        else:
            variables[name] = value
    if skipped:
        log.warning("keys %s from the EnvFrom %s %s/%s were skipped since they are invalid environment "
                    "variable names", skipped, kind, namespace, ref["name"])
    return variables


def _value_from(source: dict[str, Any], *, pod: dict[str, Any], container: dict[str, Any],
                get_configmap: ObjectGetter, get_secret: ObjectGetter,
                node: dict[str, Any] | None) -> str | None:
    """The value a valueFrom names; None when an optional reference is missing."""
    namespace = (pod.get("metadata") or {}).get("namespace", "default")
    if (ref := source.get("configMapKeyRef")) is not None:
        configmap = get_configmap(ref["name"])
        return _key_value(ref, None if configmap is None else configmap.get("data") or {},
                          kind="ConfigMap", namespace=namespace)
    if (ref := source.get("secretKeyRef")) is not None:
        secret = get_secret(ref["name"])
        return _key_value(ref, None if secret is None else _decode_secret_data(secret),
                          kind="Secret", namespace=namespace)
    try:
        if (ref := source.get("fieldRef")) is not None:
            return field_value(pod, ref["fieldPath"], node=node)
        if (ref := source.get("resourceFieldRef")) is not None:
            target = container
            if ref.get("containerName") and ref["containerName"] != container.get("name"):
                target = find_container(pod, ref["containerName"])
                if target is None:
                    raise ConfigError(f"resourceFieldRef: container {ref['containerName']!r} not found in pod")
            return resource_value(target, ref["resource"], divisor=ref.get("divisor"), node=node)
    except DownwardError as e:
        raise ConfigError(str(e)) from None
    raise ConfigError("valueFrom: must specify one of configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef")


def _key_value(ref: dict[str, Any], data: dict[str, str] | None, *, kind: str, namespace: str) -> str | None:
    """The value of a configMapKeyRef/secretKeyRef: `data` is the object's (decoded) data, None when
    the object does not exist; a missing object or key is None if the ref is optional, else an error."""
    if data is None:
        if ref.get("optional"):
            return None
        raise ConfigError(f'{kind.lower()} "{ref["name"]}" not found')
    if ref["key"] not in data:
        if ref.get("optional"):
            return None
        raise ConfigError(f"couldn't find key {ref['key']} in {kind} {namespace}/{ref['name']}")
    return data[ref["key"]]


# ---- Service variables ----

MASTER_SERVICE = ("default", "kubernetes")


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def _service_variables(service: dict[str, Any]) -> dict[str, str]:
    """Kubernetes' envvars.FromServices for one Service with a cluster IP."""
    spec = service.get("spec") or {}
    ip, ports = spec.get("clusterIP"), spec.get("ports") or []
    prefix = _env_name((service.get("metadata") or {}).get("name", ""))
    variables = {f"{prefix}_SERVICE_HOST": ip, f"{prefix}_SERVICE_PORT": str(ports[0].get("port"))}
    for port in ports:
        if port.get("name"):
            variables[f"{prefix}_SERVICE_PORT_{_env_name(port['name'])}"] = str(port.get("port"))
    for i, port in enumerate(ports):            # the Docker links family
        protocol, number = (port.get("protocol") or "TCP"), port.get("port")
        url = f"{protocol.lower()}://{ip}:{number}"
        if i == 0:
            variables[f"{prefix}_PORT"] = url
        link = f"{prefix}_PORT_{number}_{protocol.upper()}"
        variables.update({link: url, f"{link}_PROTO": protocol.lower(), f"{link}_PORT": str(number),
                          f"{link}_ADDR": ip})
    return variables


def service_env(pod: dict[str, Any], services: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Variables for the Services a container of `pod` sees (kubelet's getServiceEnvVarMap).

    Services with a cluster IP (not headless, not ExternalName) of the pod's namespace, unless
    `enableServiceLinks: false`; `kubernetes` of `default` always."""
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    links = (pod.get("spec") or {}).get("enableServiceLinks") is not False
    chosen: dict[str, dict[str, Any]] = {}
    for service in services:
        meta, spec = service.get("metadata") or {}, service.get("spec") or {}
        if spec.get("clusterIP") in (None, "", "None") or not spec.get("ports"):
            continue
        key = ((meta.get("namespace") or "default"), meta.get("name", ""))
        if key == MASTER_SERVICE:
            chosen.setdefault(key[1], service)
        elif key[0] == namespace and links:
            chosen[key[1]] = service
    variables: dict[str, str] = {}
    for name in sorted(chosen):
        variables.update(_service_variables(chosen[name]))
    return variables


def resolve_env(pod: dict[str, Any], container: dict[str, Any], *, image_env: list[str],
                get_configmap: ObjectGetter, get_secret: ObjectGetter,
                node: dict[str, Any] | None = None,
                services: Iterable[dict[str, Any]] = ()) -> dict[str, str]:
    """The container's environment, ordered: runtime defaults, image Env, Service variables, envFrom, env."""
    namespace = (pod.get("metadata") or {}).get("namespace", "default")
    env = default_path_env(image_env, hostname=pod_hostname(pod))
    links = service_env(pod, services)
    env.update(links)
    declared: dict[str, str] = {}   # what the pod sets; with `links`, the only names $(VAR) can see
    for source in container.get("envFrom") or []:
        declared.update(_env_from(source, get_configmap=get_configmap, get_secret=get_secret,
                                  namespace=namespace))
    for var in container.get("env") or []:
        if var.get("valueFrom") is not None:
            value = _value_from(var["valueFrom"], pod=pod, container=container, get_configmap=get_configmap,
                                get_secret=get_secret, node=node)
            if value is None:
                continue
        else:
            value = expand(var.get("value") or "", ChainMap(declared, links))
        declared[var["name"]] = value
    env.update(declared)
    return env
