"""Level-triggered sync of one pod: make the containers on this node match the pod spec.

`PodSyncer.sync(uid)` is called by the pod's own serial worker (podworkers.py)
whenever something about the pod may have changed: the pod object, a container
exit, a probe verdict, a backoff timer. Each call looks at the desired pod and
at the actual containers, acts on the difference, and writes the status back.
It never assumes what happened before: after an agent restart the same code
re-adopts running containers (their ids carry their restart count).

Order of work for a live pod:
  sandbox (shared net/ipc/uts namespaces) -> volumes -> init containers one by
  one -> app containers (pull image, build spec, start; restart per
  restartPolicy with CrashLoopBackOff; restart on liveness failure) -> status.
A pod with a deletionTimestamp is terminated (preStop, SIGTERM, grace, SIGKILL),
cleaned up, and then finished with a grace-0 delete, as a kubelet does.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

from controlplane.client import ApiError, Client, NotFound
from controlplane.client.events import NORMAL, WARNING, EventRecorder

from agent import containerspec, envs, podstatus
from api.timestamps import parse_rfc3339, rfc3339
from agent.config import AgentConfig
from agent.ephemeral import PodPaths
from agent.images import ImageStore, PullError, RegistryAuth
from agent.podstate import PodState, PullBackoff, container_id, parse_container_id
from agent.runtime import seccomp
from agent.runtime.service import RuntimeService
from agent.runtime.specs import ContainerNotFound, ContainerStatus, Mount, SandboxSpec, StartError
from agent.serviceaccount import MOUNT_PATH, VOLUME_NAME, TokenFiles, account_name, has_own_mount, wants_token
from agent.volumes import VolumeError, VolumeManager

log = logging.getLogger(__name__)
DONE = "done"   # sync's answer when the pod is gone and cleaned up: the worker may exit
# ConfigMaps and Secrets pods refer to are read at most this often; the cache is pruned of
# stale entries once it holds OBJECT_CACHE_PRUNE_AT of them.
OBJECT_CACHE_SECONDS = 5.0
OBJECT_CACHE_PRUNE_AT = 64
Pod = dict[str, Any]


class PodSyncer:
    def __init__(self, *, client: Client, config: AgentConfig, runtime: RuntimeService, images: ImageStore,
                 volumes: VolumeManager, recorder: EventRecorder, node_ip: str,
                 pod_lookup: Callable[[str], Pod | None], trigger: Callable[[str], None],
                 network: Any = None, probes: Any = None, cluster_ca: Callable[[], bytes | None] | None = None,
                 services: Callable[[], list[dict]] | None = None,
                 resolv_conf: Callable[[Pod], Awaitable[str]] | None = None,
                 service_account_tokens: bool = True):
        """runtime: the real `agent.runtime.Runtime`, or `agent.fakeruntime.FakeRuntime` (hollow nodes, tests).
        cluster_ca: the cluster CA (PEM) for pods' ServiceAccount mounts (`ca.crt`), None with --insecure.
        resolv_conf: the pod's /etc/resolv.conf text (agent/dns/node.py).
        service_account_tokens: False mounts no ServiceAccount token (hollow nodes: no process could read it)."""
        self.client = client
        self.config = config
        self.runtime = runtime
        self.images = images
        self.volumes = volumes
        self.recorder = recorder
        self.node_ip = node_ip
        self.pod_lookup = pod_lookup
        self.trigger = trigger
        self.network = network
        self.probes = probes
        # The Services a container's environment names (envs.service_env); raises envs.ConfigError
        # until the agent's services informer has listed once, as the kubelet does.
        self.services = services
        self.resolv_conf = resolv_conf      # the pod's /etc/resolv.conf text (agent/dns/node.py)
        self.service_account_tokens = service_account_tokens
        self.states: dict[str, PodState] = {}
        self._objects: dict[tuple[str, str, str], tuple[float, dict | None]] = {}
        self.node: dict[str, Any] | None = None

        async def request_token(account: str, namespace: str, pod: str, uid: str) -> tuple[str, int]:
            return await self.client.token_request(account, namespace, pod_name=pod, pod_uid=uid)
        self.tokens = TokenFiles(request=request_token, ca_cert=cluster_ca or (lambda: None))

    # -- re-adoption -------------------------------------------------------------------

    async def adopt(self) -> set[str]:
        """Learn what the runtime is running (after an agent restart); the pod uids found."""
        for status in await self.runtime.list():
            parsed = parse_container_id(status.id)
            if parsed is None:
                continue
            state = self.states.setdefault(status.pod_uid, PodState(status.pod_uid))
            state.admitted = True          # it runs here: it holds a capacity slot
            state.add_instance(status)
            if status.state == "running":
                self._watch_exit(state, status.id)
        uids = set(self.states)
        for sandbox in await self.runtime.list_sandboxes():
            uids.add(sandbox.pod_uid)
            adopted = self.states.setdefault(sandbox.pod_uid, PodState(sandbox.pod_uid))
            adopted.sandbox_ready = adopted.admitted = True
        uids.update(self.volumes.list_pod_dirs())
        return uids

    def _watch_exit(self, state: PodState, cid: str) -> None:
        async def watch() -> None:
            try:
                await self.runtime.wait(cid)
            except (ContainerNotFound, TimeoutError):
                pass
            except Exception:
                log.exception("waiting for container %s", cid)
            self.trigger(state.uid)
        old = state.watchers.get(cid)
        if old is None or old.done():
            state.watchers[cid] = asyncio.get_running_loop().create_task(watch(), name=f"exit-{cid}")

    # -- the sync ----------------------------------------------------------------------

    async def sync(self, uid: str) -> float | str | None:
        """Bring one pod to its desired state; returns seconds until it wants another look,
        DONE when the pod is gone and cleaned up, or None."""
        pod = self.pod_lookup(uid)
        state = self.states.setdefault(uid, PodState(uid))
        if pod is None:
            await self._terminate(None, state, grace=2.0)
            await self._cleanup(state)
            return DONE
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            await self._terminate(pod, state, grace=float(meta.get("deletionGracePeriodSeconds") or 0))
            await self._cleanup(state)
            try:
                await self.client.delete("pods", meta["name"], meta["namespace"], grace_seconds=0)
            except NotFound:
                pass
            return DONE
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed") and not self._any_running(state):
            self._stop_probers(state)
            return None
        if not state.admitted and state.terminal_reason is None and not self._admit(pod, state):
            await self._write_status(pod, state)
            return None
        if state.eviction is not None and state.terminal_reason is None:
            await self._evict(pod, state)
        if not state.start_time:
            state.start_time = (pod.get("status") or {}).get("startTime") or rfc3339()
        wake: list[float] = []
        deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
        if deadline is not None and state.terminal_reason is None:
            started = parse_rfc3339(state.start_time) or time.time()
            left = started + deadline - time.time()
            if left <= 0:
                state.terminal_reason = ("DeadlineExceeded", "Pod was active on the node longer than the "
                                                             "specified deadline")
                self.recorder.event(pod, WARNING, "DeadlineExceeded", state.terminal_reason[1])
                await self._terminate(pod, state, grace=float(pod["spec"].get("terminationGracePeriodSeconds", 30)))
            else:
                wake.append(left)
        if state.terminal_reason is None:
            if not await self._ensure_sandbox(pod, state):
                wake.append(2.0)    # e.g. the network is not up yet, or the pod CIDR is full
            elif await self._ensure_volumes(pod, state):
                if await self._sync_init_containers(pod, state, wake):
                    for container in pod["spec"]["containers"]:
                        await self._sync_container(pod, state, container, wake, init=False)
        await self._write_status(pod, state)
        return min(wake) if wake else None

    # -- admission and eviction ------------------------------------------------------------

    def _admit(self, pod: Pod, state: PodState) -> bool:
        """The kubelet's admission of the pods resource: a pod beyond the node's pod capacity
        (status.capacity.pods, --max-pods) fails with reason OutOfpods. Pods that ended
        (Succeeded/Failed) free their slot. Synchronous, so two pods cannot take one slot."""
        used = sum(1 for s in self.states.values() if s.admitted and s.phase not in ("Succeeded", "Failed"))
        capacity = self.config.max_pods
        if used >= capacity:
            message = f"Node didn't have enough resource: pods, requested: 1, used: {used}, capacity: {capacity}"
            state.terminal_reason = ("OutOfpods", f"Pod was rejected: {message}")
            self.recorder.event(pod, WARNING, "OutOfpods", message)
            log.info("pod %s rejected: %s", pod["metadata"]["name"], message)
            return False
        state.admitted = True
        return True

    def request_eviction(self, uid: str, message: str) -> None:
        """Evict the pod (agent/ephemeral.py's verdict); its worker does it on the next sync."""
        state = self.states.get(uid)
        if state is not None and state.eviction is None and state.terminal_reason is None:
            state.eviction = message
            self.trigger(uid)

    async def _evict(self, pod: Pod, state: PodState) -> None:
        """End the pod as the kubelet's eviction manager does: Failed/Evicted with the message,
        a Warning event, containers killed at once, volumes (the disk it filled) torn down.
        Writable layers and logs stay until the pod is deleted, as dead containers do."""
        message = state.eviction or ""
        state.terminal_reason = ("Evicted", message)
        log.warning("pod %s evicted: %s", pod["metadata"]["name"], message)
        self.recorder.event(pod, WARNING, "Evicted", message)
        await self._terminate(pod, state, grace=0.0)
        try:
            await self.volumes.teardown(state.uid)
        except Exception as exc:  # noqa: BLE001 - the pod is evicted either way; deletion retries
            log.warning("pod %s: volume teardown after eviction failed: %s", pod["metadata"]["name"], exc)

    def storage_targets(self) -> list[tuple[str, Pod, PodPaths]]:
        """The running pods and where their ephemeral storage lives (for agent/ephemeral.py)."""
        targets = []
        for uid, state in list(self.states.items()):
            pod = self.pod_lookup(uid)
            if pod is None or pod["metadata"].get("deletionTimestamp") or not state.admitted \
                    or state.terminal_reason is not None or state.phase in ("Succeeded", "Failed"):
                continue
            paths = PodPaths()
            for name, items in state.instances.items():
                paths.containers[name] = [*(self.runtime.writable_layer(s.id) for s in items),
                                          container_log_dir(self.config.logs_dir, pod, name)]
            for volume in pod["spec"].get("volumes") or []:
                local = volume.get("configMap") is not None or volume.get("downwardAPI") is not None or (
                    volume.get("emptyDir") is not None and (volume["emptyDir"] or {}).get("medium") != "Memory")
                if local and volume["name"] in state.volumes:
                    paths.local_volumes[volume["name"]] = state.volumes[volume["name"]]
            targets.append((uid, pod, paths))
        return targets

    # -- sandbox and volumes -------------------------------------------------------------

    async def _ensure_sandbox(self, pod: Pod, state: PodState) -> bool:
        spec = pod["spec"]
        if state.sandbox_ready and (existing := await self.runtime.get_sandbox(state.uid)) is not None:
            if spec.get("hostNetwork"):
                state.pod_ip = self.node_ip
            elif not state.pod_ip and self.network is not None and existing.netns_path is not None:
                # Re-adopted after an agent restart: attach is idempotent and answers
                # with the address the pod already has.
                try:
                    state.pod_ip = await self.network.attach(pod, existing.netns_path)
                except Exception as exc:
                    log.warning("pod %s: network not ready after restart: %s", pod["metadata"]["name"], exc)
                    return False
            return True
        name = pod["metadata"]["name"]
        hostname = spec.get("hostname") or name[:63]
        try:
            sandbox = await self.runtime.create_sandbox(SandboxSpec(
                pod_uid=state.uid, hostname=hostname, host_network=bool(spec.get("hostNetwork")),
                host_ipc=bool(spec.get("hostIPC")), host_pid=bool(spec.get("hostPID")),
                hosts_entries=[("127.0.0.1", "localhost")],
                dns=await self.resolv_conf(pod) if self.resolv_conf is not None else None,
                resources=containerspec.pod_resources(pod, max_pids=self.config.pod_max_pids)))
            if spec.get("hostNetwork"):
                state.pod_ip = self.node_ip
            elif self.network is not None and sandbox.netns_path is not None:
                state.pod_ip = await self.network.attach(pod, sandbox.netns_path)
                await self.runtime.update_hosts(state.uid, [("127.0.0.1", "localhost"),
                                                            (state.pod_ip, hostname)])
        except Exception as exc:
            log.warning("pod %s: sandbox failed: %s", name, exc)
            self.recorder.event(pod, WARNING, "FailedCreatePodSandBox", f"Failed to create pod sandbox: {exc}")
            for c in pod["spec"]["containers"]:
                state.waiting[c["name"]] = ("ContainerCreating", f"Failed to create pod sandbox: {exc}")
            return False
        state.sandbox_ready = True
        return True

    async def _get_object(self, kind: str, namespace: str, name: str) -> dict | None:
        """ConfigMaps and Secrets a pod refers to, cached for a few seconds."""
        key = (kind, namespace, name)
        cached = self._objects.get(key)
        if cached is not None and time.monotonic() - cached[0] < OBJECT_CACHE_SECONDS:
            return cached[1]
        try:
            obj: dict | None = await self.client.get(kind, name, namespace)
        except NotFound:
            obj = None
        now = time.monotonic()
        if len(self._objects) >= OBJECT_CACHE_PRUNE_AT:
            # Entries are only ever read while fresh, so stale ones can go: without this the cache
            # would keep every ConfigMap and Secret any pod on this node ever referred to.
            self._objects = {k: v for k, v in self._objects.items() if now - v[0] < OBJECT_CACHE_SECONDS}
        self._objects[key] = (now, obj)
        return obj

    async def _refs(self, pod: Pod) -> tuple[Callable[[str], dict | None], Callable[[str], dict | None]]:
        """Synchronous lookups of the pod's configmaps and secrets (fetched first)."""
        ns = pod["metadata"]["namespace"]
        names: dict[str, set[str]] = {"configmaps": set(), "secrets": set()}
        spec = pod["spec"]
        for v in spec.get("volumes") or []:
            if v.get("configMap"):
                names["configmaps"].add(v["configMap"]["name"])
            if v.get("secret"):
                names["secrets"].add(v["secret"]["secretName"])
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            for e in c.get("env") or []:
                ref = e.get("valueFrom") or {}
                if ref.get("configMapKeyRef"):
                    names["configmaps"].add(ref["configMapKeyRef"]["name"])
                if ref.get("secretKeyRef"):
                    names["secrets"].add(ref["secretKeyRef"]["name"])
            for e in c.get("envFrom") or []:
                if e.get("configMapRef"):
                    names["configmaps"].add(e["configMapRef"]["name"])
                if e.get("secretRef"):
                    names["secrets"].add(e["secretRef"]["name"])
        for s in spec.get("imagePullSecrets") or []:
            names["secrets"].add(s["name"])
        found: dict[tuple[str, str], dict | None] = {}
        for kind, wanted in names.items():
            for name in wanted:
                found[(kind, name)] = await self._get_object(kind, ns, name)
        return (lambda n: found.get(("configmaps", n))), (lambda n: found.get(("secrets", n)))

    async def _ensure_volumes(self, pod: Pod, state: PodState) -> bool:
        get_cm, get_secret = await self._refs(pod)
        try:
            state.volumes = await self.volumes.setup(pod, get_configmap=get_cm, get_secret=get_secret,
                                                     node=self.node)
            await self._ensure_token(pod, state)
            return True
        except VolumeError as exc:
            self.recorder.event(pod, WARNING, "FailedMount", str(exc))
            for c in pod["spec"]["containers"]:
                state.waiting[c["name"]] = ("ContainerCreating", str(exc))
            return False

    async def _ensure_token(self, pod: Pod, state: PodState) -> None:
        """The ServiceAccount token mount (agent/serviceaccount.py), its token renewed when due."""
        if not self.service_account_tokens:
            return
        ns = pod["metadata"]["namespace"]
        account = await self._get_object("serviceaccounts", ns, account_name(pod))
        if account is None or not wants_token(pod, account):
            # No such account: Kubernetes refuses the pod at admission; here it runs without a token.
            state.token_mount = None
            return
        if state.token_mount is not None and not self.tokens.due(state.uid):
            return
        try:
            files = await self.tokens.files(pod)
        except ApiError as exc:
            raise VolumeError(f'MountVolume.SetUp failed for volume "{VOLUME_NAME}" : cannot get a token for '
                              f'ServiceAccount "{ns}/{account_name(pod)}": {exc}') from None
        state.token_mount = await self.volumes.setup_files(pod, VOLUME_NAME, files)

    # -- containers ----------------------------------------------------------------------

    async def _sync_init_containers(self, pod: Pod, state: PodState, wake: list[float]) -> bool:
        """Run init containers in order; True once all have succeeded."""
        for container in pod["spec"].get("initContainers") or []:
            latest = state.latest(container["name"])
            if latest is not None and latest.state == "exited" and latest.exit_code == 0:
                continue
            await self._sync_container(pod, state, container, wake, init=True)
            return False
        return True

    def _wants_restart(self, pod: Pod, status: ContainerStatus, *, init: bool) -> bool:
        policy = pod["spec"].get("restartPolicy", "Always")
        if init:  # init containers restart on failure unless the pod's policy is Never
            return status.exit_code != 0 and policy != "Never"
        return policy == "Always" or (policy == "OnFailure" and status.exit_code != 0)

    async def _sync_container(self, pod: Pod, state: PodState, container: dict, wake: list[float], *,
                              init: bool) -> None:
        name = container["name"]
        latest = state.latest(name)
        if latest is not None and latest.state == "running":
            state.waiting.pop(name, None)
            current = await self._refresh(state, latest)
            if current.state == "running":
                if name in state.unhealthy:
                    message = state.unhealthy.pop(name)
                    self.recorder.event(pod, NORMAL, "Killing",
                                        f"Container {name} failed liveness probe, will be restarted")
                    log.info("pod %s: %s: %s", pod["metadata"]["name"], name, message)
                    await self._stop(pod, state, current, grace=float(pod["spec"].get("terminationGracePeriodSeconds", 30)))
                    current = await self._refresh(state, current)
                else:
                    if self.probes is not None and not init and current.id not in state.probers:
                        # Re-adopted after an agent restart: probe it again.
                        prober = self.probes.start(pod, container, current.id, state)
                        if prober is not None:
                            state.probers[current.id] = [prober]
                    return
            latest = current
        if latest is not None and latest.state == "exited":
            self._stop_probers(state, latest.id)
            if latest.reason == "OOMKilled" and latest.id not in state.oom_reported:
                limit = ((container.get("resources") or {}).get("limits") or {}).get("memory", "?")
                self.recorder.event(pod, WARNING, "OOMKilling",
                                    f"Memory cgroup out of memory: container {name} was killed "
                                    f"(memory limit {limit})")
                state.oom_reported.add(latest.id)
            if not self._wants_restart(pod, latest, init=init):
                state.waiting.pop(name, None)
                return
            restarts = state.restart_count(name) + 1
            ran = ((latest.finished_at or datetime.now(timezone.utc)) -
                   (latest.started_at or latest.finished_at or datetime.now(timezone.utc))).total_seconds()
            delay = 0.0 if ran >= self.config.backoff.reset_after_seconds else self.config.backoff.delay(restarts)
            finished = (latest.finished_at or datetime.now(timezone.utc)).timestamp()
            left = finished + delay - time.time()
            if left > 0:
                meta = pod["metadata"]
                message = (f"back-off {_fmt_seconds(delay)} restarting failed container={name} "
                           f"pod={meta['name']}_{meta['namespace']}({meta['uid']})")
                if state.waiting.get(name, ("",))[0] != "CrashLoopBackOff":
                    self.recorder.event(pod, WARNING, "BackOff", f"Back-off restarting failed container {name} "
                                                                 f"in pod {meta['name']}_{meta['namespace']}")
                state.waiting[name] = ("CrashLoopBackOff", message)
                wake.append(left)
                return
            await self._start(pod, state, container, instance=restarts, wake=wake, init=init)
            return
        await self._start(pod, state, container, instance=0 if latest is None else state.restart_count(name) + 1,
                          wake=wake, init=init)

    async def _refresh(self, state: PodState, status: ContainerStatus) -> ContainerStatus:
        try:
            current = await self.runtime.status(status.id)
        except ContainerNotFound:
            return status
        state.add_instance(current)
        return current

    async def _pull(self, pod: Pod, state: PodState, container: dict, get_secret: Callable,
                    wake: list[float]) -> Any:
        name, ref = container["name"], container["image"]
        backoff = state.pulls.get(name)
        if backoff is not None and backoff.retry_at > time.time():
            state.waiting[name] = ("ImagePullBackOff", f'Back-off pulling image "{ref}": {backoff.message}')
            wake.append(backoff.retry_at - time.time())
            return None
        auth = RegistryAuth()
        for secret_ref in pod["spec"].get("imagePullSecrets") or []:
            secret = get_secret(secret_ref["name"])
            data = (secret or {}).get("data") or {}
            if ".dockerconfigjson" in data:
                try:
                    auth = auth.merged(RegistryAuth.from_dockerconfigjson(base64.b64decode(data[".dockerconfigjson"])))
                except Exception as exc:
                    log.warning("pod %s: bad imagePullSecret %s: %s", pod["metadata"]["name"], secret_ref["name"], exc)

        def on_event(reason: str, message: str) -> None:
            self.recorder.event(pod, NORMAL, reason, message)
        try:
            image = await self.images.pull(ref, policy=container.get("imagePullPolicy", "IfNotPresent"),
                                           auth=auth, on_event=on_event)
        except PullError as exc:
            attempts = (backoff.attempts if backoff else 0) + 1
            delay = self.config.backoff.delay(attempts)
            state.pulls[name] = PullBackoff(attempts=attempts, retry_at=time.time() + delay, reason=exc.reason,
                                            message=str(exc))
            state.waiting[name] = (exc.reason, str(exc))
            self.recorder.event(pod, WARNING, "Failed", f"Failed to pull image \"{ref}\": {exc}")
            self.recorder.event(pod, WARNING, "Failed", f"Error: {exc.reason}")
            wake.append(delay)
            return None
        state.pulls.pop(name, None)
        return image

    async def _start(self, pod: Pod, state: PodState, container: dict, *, instance: int,
                     wake: list[float], init: bool) -> None:
        name = container["name"]
        get_cm, get_secret = await self._refs(pod)
        image = await self._pull(pod, state, container, get_secret, wake)
        if image is None:
            return
        try:
            env = envs.resolve_env(pod_with_ips(pod, self.node_ip, state.pod_ip), container,
                                   image_env=list(image.config.env), get_configmap=get_cm, get_secret=get_secret,
                                   node=self.node, services=self.services() if self.services else ())
            args = envs.command_line(container, list(image.config.entrypoint), list(image.config.cmd), env)
            user = containerspec.user_of(pod, container, image_user=image.config.user, layers=list(image.layers))
            seccomp_type, localhost = containerspec.seccomp_profile_of(pod, container)
            profile: str | dict | None = {"RuntimeDefault": seccomp.RUNTIME_DEFAULT, "Unconfined": None}.get(
                seccomp_type)
            if seccomp_type == "Localhost":
                profile = await asyncio.to_thread(seccomp.load_localhost, self.config.seccomp_dir, localhost)
        except (envs.ConfigError, containerspec.UserError, seccomp.ProfileError) as exc:
            state.waiting[name] = ("CreateContainerConfigError", str(exc))
            self.recorder.event(pod, WARNING, "Failed", f"Error: {exc}")
            wake.append(self.config.backoff.max_seconds / 6)
            return
        mounts = self.volumes.mounts_for(container, state.volumes)
        if state.token_mount is not None and not has_own_mount(container):
            mounts.append(Mount(source=state.token_mount, destination=MOUNT_PATH, readonly=True))
        cid = container_id(state.uid, name, instance)
        log_path = container_log_dir(self.config.logs_dir, pod, name) / f"{instance}.log"
        spec = containerspec.build_spec(cid=cid, pod=pod, container=container, layers=list(image.layers),
                                        args=args, env=env, working_dir=image.config.working_dir, user=user,
                                        mounts=mounts, log_path=log_path, pids_limit=None, seccomp=profile)
        await self._forget_old_instances(state, name, keep=1)
        state.waiting[name] = ("ContainerCreating", "")
        try:
            status = await self.runtime.run_container(spec)
        except (StartError, ValueError) as exc:     # ValueError: e.g. a Localhost profile libseccomp refused
            self.recorder.event(pod, WARNING, "Failed", f"Error: failed to start container \"{name}\": {exc}")
            try:
                state.add_instance(await self.runtime.status(cid))
            except ContainerNotFound:
                pass
            state.waiting[name] = ("RunContainerError", str(exc))
            wake.append(self.config.backoff.delay(instance + 1))
            return
        state.waiting.pop(name, None)
        state.unhealthy.pop(name, None)
        state.add_instance(status)
        self._watch_exit(state, cid)
        self.recorder.event(pod, NORMAL, "Created", f"Created container {name}")
        self.recorder.event(pod, NORMAL, "Started", f"Started container {name}")
        if self.probes is not None and not init:
            prober = self.probes.start(pod, container, cid, state)
            if prober is not None:
                state.probers[cid] = [prober]
        await self._post_start(pod, state, container, cid)

    async def _post_start(self, pod: Pod, state: PodState, container: dict, cid: str) -> None:
        hook = ((container.get("lifecycle") or {}).get("postStart")) or None
        if not hook or self.probes is None:
            return
        ok, message = await self.probes.run_hook(hook, pod=pod, container=container, cid=cid, pod_ip=state.pod_ip)
        if not ok:
            self.recorder.event(pod, WARNING, "FailedPostStartHook", message)
            await self.runtime.stop_container(cid, grace_seconds=float(pod["spec"].get("terminationGracePeriodSeconds", 30)))

    async def _forget_old_instances(self, state: PodState, name: str, *, keep: int) -> None:
        """Keep the newest `keep` exited instances (for lastState and `logs --previous`)."""
        items = state.instances.get(name) or []
        while len(items) > keep:
            old = items.pop(0)
            try:
                await self.runtime.remove_container(old.id, remove_log=True)
            except ContainerNotFound:
                pass
            except RuntimeError:
                items.insert(0, old)
                break

    # -- stopping ----------------------------------------------------------------------

    def _any_running(self, state: PodState) -> bool:
        return any(s.state == "running" for items in state.instances.values() for s in items)

    def _stop_probers(self, state: PodState, cid: str | None = None) -> None:
        for key in [cid] if cid else list(state.probers):
            for prober in state.probers.pop(key, []) or []:
                asyncio.get_running_loop().create_task(prober.stop())

    async def _stop(self, pod: Pod | None, state: PodState, status: ContainerStatus, *, grace: float) -> None:
        started = time.monotonic()
        container = None
        if pod is not None:
            container = next((c for c in pod["spec"]["containers"] + (pod["spec"].get("initContainers") or [])
                              if c["name"] == status.name), None)
        hook = ((container or {}).get("lifecycle") or {}).get("preStop")
        if hook and self.probes is not None and pod is not None:
            try:
                await asyncio.wait_for(self.probes.run_hook(hook, pod=pod, container=container, cid=status.id,
                                                            pod_ip=state.pod_ip), timeout=max(grace, 0.1))
            except asyncio.TimeoutError:
                pass
        left = max(0.0, grace - (time.monotonic() - started))
        try:
            final = await self.runtime.stop_container(status.id, grace_seconds=left)
            state.add_instance(final)
        except ContainerNotFound:
            pass

    async def _terminate(self, pod: Pod | None, state: PodState, *, grace: float) -> None:
        self._stop_probers(state)
        running = [s for items in state.instances.values() for s in items if s.state == "running"]
        if running and pod is not None:
            for s in running:
                self.recorder.event(pod, NORMAL, "Killing", f"Stopping container {s.name}")
        await asyncio.gather(*(self._stop(pod, state, s, grace=grace) for s in running))

    async def _cleanup(self, state: PodState) -> None:
        self._stop_probers(state)
        for task in state.watchers.values():
            task.cancel()
        for items in state.instances.values():
            for s in items:
                try:
                    await self.runtime.remove_container(s.id, remove_log=True)
                except (ContainerNotFound, RuntimeError):
                    pass
        if self.network is not None:
            try:
                await self.network.detach(state.uid)
            except Exception as exc:
                log.warning("pod %s: network teardown failed: %s", state.uid, exc)
        try:
            await self.runtime.remove_sandbox(state.uid)
        except Exception as exc:
            log.debug("pod %s: no sandbox to remove (%s)", state.uid, exc)
        await self.volumes.teardown(state.uid)
        self.tokens.forget(state.uid)
        self.states.pop(state.uid, None)

    # -- status ------------------------------------------------------------------------

    async def _write_status(self, pod: Pod, state: PodState) -> None:
        status = podstatus.pod_status(pod, state, host_ip=self.node_ip, now=rfc3339())
        state.phase = status.get("phase") or ""
        if podstatus.comparable(status) == podstatus.comparable(state.last_status) and \
                podstatus.comparable(status) == podstatus.comparable(pod.get("status")):
            return
        meta = pod["metadata"]
        try:
            await self.client.update_status({"apiVersion": "v1", "kind": "Pod",
                                             "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                                             "status": status})
            state.last_status = status
        except ApiError as exc:
            log.warning("pod %s: status update failed: %s", meta["name"], exc.message)


def container_log_dir(logs_dir: Path, pod: Pod, name: str) -> Path:
    """<logs>/<namespace>_<pod>_<uid>/<container>/, where each instance's log goes (as the kubelet's)."""
    meta = pod["metadata"]
    return logs_dir / f"{meta['namespace']}_{meta['name']}_{meta['uid']}" / name


def pod_with_ips(pod: Pod, host_ip: str, pod_ip: str) -> Pod:
    """The pod as the downward API should see it (status.hostIP / podIP filled in)."""
    status = {**(pod.get("status") or {}), "hostIP": host_ip}
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return {**pod, "status": status}


def _fmt_seconds(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60}m{s % 60}s" if s >= 60 else f"{s}s"
