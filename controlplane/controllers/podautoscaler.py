"""The HorizontalPodAutoscaler controller: scale a Deployment or ReplicaSet to its pods' CPU or memory use.

Keys are (namespace, name) of HPAs; each is looked at when it changes and then every
`sync_seconds` (Kubernetes: 15 s). A reconcile:
1. reads the target (`scaleTargetRef`: Deployment or ReplicaSet) and its selector;
   a target at 0 replicas is left alone (ScalingActive False, ScalingDisabled);
2. reads the pods' usage from the agents — the `PodMetrics` relay `ctl top pods` uses
   (the API server asks the agents of the nodes concerned: a pod's container usage over
   the agent's last sampling window) — and each pod's requests;
3. per metric (default: cpu at 80 % of requests), the desired replicas by Kubernetes'
   rule (podautoscaler_rules.replicas_for_metric), and takes the largest;
4. clamps to minReplicas..maxReplicas (ScalingLimited), bounds the step (rate_limit) and
   applies the stabilisation windows (stabilize; the recommendations are kept in memory,
   so a controller that restarts starts its window afresh, as Kubernetes');
5. sets the target's `spec.replicas` (event SuccessfulRescale) and writes status:
   currentReplicas, desiredReplicas, currentMetrics, lastScaleTime, and the conditions
   AbleToScale, ScalingActive and ScalingLimited.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from api.nodelease import now_micro
from api.quantity import format_bytes, format_cpu
from api.requests import amount, container_requests
from api.selectors import selector_from_spec
from controlplane.client import ApiError, Conflict, NotFound
from controlplane.client.events import NORMAL, WARNING
from controlplane.controllers import podautoscaler_rules as rules
from controlplane.controllers.manager import Context, QueueController
from controlplane.controllers.owned import is_ready
from controlplane.controllers.settings import ControllerSettings

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Key = tuple[str, str]


def _pod_request(pod: Obj, resource: str) -> int:
    return sum(container_requests(c).get(resource, 0) for c in (pod.get("spec") or {}).get("containers") or [])


def _pod_usage(sample: Obj, resource: str) -> int:
    """cpu in millicores, memory in bytes, from an agent's sample."""
    if resource == "cpu":
        return sum(c["cpuNanocores"] for c in sample["containers"]) // 1_000_000
    return sum(c["memoryBytes"] for c in sample["containers"])


# The controller pattern (informers in setup, events -> keys, reconcile a key, retry on Conflict):
# alike in shape across controllers by design (the `duplicates` tool pairs them); the rules differ.
class HorizontalPodAutoscalerController(QueueController):
    def __init__(self, settings: ControllerSettings | None = None, *, namespace: str = "",
                 sync_seconds: float | None = None, clock: Callable[[], float] = time.time):
        super().__init__(name="horizontalpodautoscaler")
        self.settings = settings or ControllerSettings()
        self.workers = self.settings.workers
        self.namespace = namespace
        self.sync_seconds = sync_seconds if sync_seconds is not None else self.settings.hpa_sync_seconds
        self.clock = clock
        self.recommendations: dict[Key, list[tuple[float, int]]] = {}

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.hpas = ctx.informers.get("HorizontalPodAutoscaler", namespace=self.namespace)
        self.pods = ctx.informers.get("Pod", namespace=self.namespace)
        self.hpas.add_handlers(on_add=self._enqueue, on_update=self._updated, on_delete=self._enqueue)

    def _enqueue(self, hpa: Obj) -> None:
        self.queue.add((hpa["metadata"].get("namespace", ""), hpa["metadata"]["name"]))

    def _updated(self, old: Obj, new: Obj) -> None:
        if old.get("spec") != new.get("spec"):   # our own status writes need no look
            self._enqueue(new)

    async def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        hpa = self.hpas.get(namespace, name)
        if hpa is None:
            self.recommendations.pop(key, None)
            return None
        try:
            await self._reconcile(key, hpa)
        except Conflict:
            return 0.2
        except NotFound:
            pass
        return self.sync_seconds

    async def _reconcile(self, key: Key, hpa: Obj) -> None:
        namespace = key[0]
        spec = hpa["spec"]
        ref = spec["scaleTargetRef"]
        status: Obj = dict(hpa.get("status") or {})
        conditions: dict[str, Obj] = {c["type"]: c for c in status.get("conditions") or []}
        now = self.clock()

        def condition(type_: str, value: bool, reason: str, message: str) -> None:
            old = conditions.get(type_)
            text = "True" if value else "False"
            since = old["lastTransitionTime"] if old and old.get("status") == text else now_micro(now)
            conditions[type_] = {"type": type_, "status": text, "reason": reason, "message": message,
                                 "lastTransitionTime": since}

        plural = {"Deployment": "deployments", "ReplicaSet": "replicasets"}.get(ref["kind"], "")
        try:
            target = await self.ctx.client.get(plural, ref["name"], namespace)
        except NotFound:
            condition("AbleToScale", False, "FailedGetScale",
                      f'the HPA controller was unable to get the target\'s current scale: {plural} '
                      f'"{ref["name"]}" not found')
            await self._write(hpa, status, conditions)
            return
        current = int((target.get("spec") or {}).get("replicas", 1))
        status["currentReplicas"] = int((target.get("status") or {}).get("replicas", current))
        if current == 0 and spec.get("minReplicas", 1) != 0:
            condition("ScalingActive", False, "ScalingDisabled", "scaling is disabled since the replica count of "
                                                                 "the target is zero")
            status["desiredReplicas"] = 0
            await self._write(hpa, status, conditions)
            return
        selector = selector_from_spec((target.get("spec") or {}).get("selector") or {})
        pods = [p for p in self.pods.list(namespace, selector) if not p["metadata"].get("deletionTimestamp")
                and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        desired, reasons, metrics_status, error = 0, [], [], ""
        samples: dict[str, Obj] | None = None
        for metric in spec.get("metrics") or [rules.DEFAULT_METRIC]:
            resource = metric["resource"]["name"]
            target_spec = dict(metric["resource"]["target"])
            if target_spec.get("type") == "AverageValue":   # a quantity, in the unit usage is in
                target_spec["averageValue"] = amount(resource, target_spec["averageValue"])
            if samples is None:
                try:
                    found = await self.ctx.client.pod_metrics(namespace, label_selector=str(selector))
                    samples = {s["name"]: s for s in found["pods"]}
                except ApiError as exc:
                    error = f"unable to get metrics for resource {resource}: {exc.message}"
                    break
            missing_request = [p["metadata"]["name"] for p in pods if _pod_request(p, resource) <= 0]
            if missing_request and target_spec.get("type") == "Utilization":
                error = (f"failed to get {resource} utilization: missing request for {resource} in containers of "
                         f"pods {', '.join(sorted(missing_request))}")
                break
            batch = [rules.PodSample(p["metadata"]["name"], _pod_request(p, resource),
                                     _pod_usage(samples[p["metadata"]["name"]], resource)
                                     if p["metadata"]["name"] in samples else None, is_ready(p)) for p in pods]
            try:
                result = rules.replicas_for_metric(current, batch, target_spec)
            except ValueError as exc:
                error = f"failed to get {resource} utilization: {exc}"
                break
            shown = format_cpu(result.average or 0) if resource == "cpu" else format_bytes(result.average or 0)
            current_value: Obj = {"averageValue": shown}
            if result.utilization is not None:
                current_value["averageUtilization"] = result.utilization
            metrics_status.append({"type": "Resource", "resource": {"name": resource, "current": current_value}})
            if result.replicas > desired:
                desired = result.replicas
                kind = "utilization (percentage of request)" if target_spec.get("type") == "Utilization" else "usage"
                reasons = [f"{resource} resource {kind} {'above' if desired > current else 'below'} target"]
        if error:
            condition("ScalingActive", False, "FailedGetResourceMetric", error)
            self.ctx.recorder.event(hpa, WARNING, "FailedGetResourceMetric", error)
            status["desiredReplicas"] = current
            await self._write(hpa, status, conditions)
            return
        condition("ScalingActive", True, "ValidMetricFound",
                  "the HPA was able to successfully calculate a replica count from "
                  f"{metrics_status[0]['resource']['name']} resource" if metrics_status else "no metrics")
        status["currentMetrics"] = metrics_status or None
        low, high = int(spec.get("minReplicas", 1)), int(spec["maxReplicas"])
        clamped = min(max(desired, low), high)
        if clamped != desired:
            condition("ScalingLimited", True, "TooManyReplicas" if desired > high else "TooFewReplicas",
                      f"the desired replica count is {'more' if desired > high else 'less'} than the "
                      f"{'maximum' if desired > high else 'minimum'} replica count")
        else:
            condition("ScalingLimited", False, "DesiredWithinRange", "the desired count is within the acceptable "
                                                                     "range")
        history = self.recommendations.setdefault(key, [])
        stabilized = rules.stabilize(current, clamped, history, now, spec.get("behavior"))
        history.append((now, clamped))
        longest = max(rules.windows(spec.get("behavior")))
        self.recommendations[key] = [(t, r) for t, r in history if t > now - longest - 1]
        final = rules.rate_limit(current, stabilized, spec.get("behavior"))
        status["desiredReplicas"] = final
        if final != current:
            await self._scale(target, final)
            reason = reasons[0] if reasons else "All metrics below target"
            if final < current and not reasons:
                reason = "All metrics below target"
            message = f"New size: {final}; reason: {reason}"
            self.ctx.recorder.event(hpa, NORMAL, "SuccessfulRescale", message)
            status["lastScaleTime"] = now_micro(now)
            condition("AbleToScale", True, "SucceededRescale",
                      f"the HPA controller was able to update the target scale to {final}")
        else:
            condition("AbleToScale", True, "ReadyForNewScale" if stabilized == clamped else "ScaleDownStabilized",
                      "recommended size matches current size" if stabilized == clamped else
                      "recent recommendations were higher than current one, applying the highest recent "
                      "recommendation")
        await self._write(hpa, status, conditions)

    async def _scale(self, target: Obj, replicas: int) -> None:
        for _attempt in range(5):
            target["spec"]["replicas"] = replicas
            try:
                await self.ctx.client.update(target)
                return
            except Conflict:
                meta = target["metadata"]
                target = await self.ctx.client.get(target["kind"], meta["name"], meta.get("namespace", ""))
        raise Conflict("the target kept changing")

    async def _write(self, hpa: Obj, status: Obj, conditions: dict[str, Obj]) -> None:
        status["conditions"] = [conditions[t] for t in ("AbleToScale", "ScalingActive", "ScalingLimited")
                                if t in conditions]
        status["observedGeneration"] = hpa["metadata"].get("generation")
        status = {k: v for k, v in status.items() if v is not None}
        if status != (hpa.get("status") or {}):
            await self.ctx.client.update_status({**hpa, "status": status})
