"""Scheduler configuration: plugin weights and knobs, from a YAML file or defaults.

    apiVersion: skiff.io/v1alpha1          # optional
    kind: SchedulerConfiguration           # optional
    schedulerName: default-scheduler       # pods with this spec.schedulerName are ours
    percentageOfNodesToScore: 0            # 0: adaptive, as kube-scheduler (50% - nodes/125, at least
                                           #    5%), but at most 250 nodes (algorithm.py)
    podInitialBackoffSeconds: 1
    podMaxBackoffSeconds: 10
    parallelBinds: 128                     # binds in flight at once
    seed: 42                               # tie-breaking and start offsets; default random, logged
    scoreWeights:                          # Kubernetes' defaults; 0 turns a score off
      NodeResourcesLeastAllocated: 1
      NodeResourcesBalancedAllocation: 1
      NodeAffinity: 2
      TaintToleration: 3
      InterPodAffinity: 2
      SelectorSpread: 1
      ImageLocality: 1
    disabledPlugins: [ImageLocality]       # off at every extension point

`build_framework` turns a config into the Framework (framework.py) the scheduler
and the dry-run preview run. A bad file is refused with the field that is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from controlplane.scheduler.framework import Framework
from controlplane.scheduler.plugins import ALL_PLUGINS, DEFAULT_SCORE_WEIGHTS, FILTERS, PLUGIN_CLASSES

MAX_WEIGHT = 100


class ConfigError(ValueError):
    pass


class SchedulerConfig(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    api_version: Optional[Literal["skiff.io/v1alpha1"]] = None
    kind: Optional[Literal["SchedulerConfiguration"]] = None
    scheduler_name: str = Field("default-scheduler", min_length=1)
    percentage_of_nodes_to_score: int = Field(0, ge=0, le=100)
    pod_initial_backoff_seconds: float = Field(1.0, gt=0)
    pod_max_backoff_seconds: float = Field(10.0, gt=0)
    # An unschedulable pod is retried when the cluster changes, and at the latest after this long.
    max_unschedulable_seconds: float = Field(300.0, gt=0)
    parallel_binds: int = Field(128, ge=1)
    seed: Optional[int] = None
    score_weights: dict[str, int] = Field(default_factory=dict)
    disabled_plugins: list[str] = Field(default_factory=list)

    @field_validator("score_weights")
    @classmethod
    def _weights(cls, value: dict[str, int]) -> dict[str, int]:
        for name, weight in value.items():
            if name not in DEFAULT_SCORE_WEIGHTS:
                raise ValueError(f"unknown score plugin {name!r}; known: {', '.join(DEFAULT_SCORE_WEIGHTS)}")
            if not 0 <= weight <= MAX_WEIGHT:
                raise ValueError(f"weight of {name} must be between 0 and {MAX_WEIGHT}, got {weight}")
        return value

    @field_validator("disabled_plugins")
    @classmethod
    def _disabled(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in ALL_PLUGINS:
                raise ValueError(f"unknown plugin {name!r}; known: {', '.join(ALL_PLUGINS)}")
        return value

    def weights(self) -> dict[str, int]:
        """Enabled score plugins and their weights."""
        merged = {**DEFAULT_SCORE_WEIGHTS, **self.score_weights}
        return {name: w for name, w in merged.items() if w > 0 and name not in self.disabled_plugins}

    def build_framework(self) -> Framework:
        plugins = {cls.name: cls() for cls in PLUGIN_CLASSES if cls.name not in self.disabled_plugins}
        filters = [plugins[name] for name in FILTERS if name in plugins]
        scores = [(plugins[name], weight) for name, weight in self.weights().items()]
        return Framework(filters=filters, scores=scores)


def parse_config(data: Any, *, source: str = "scheduler config") -> SchedulerConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: must be a mapping of settings, got {type(data).__name__}")
    try:
        config = SchedulerConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None
    if config.pod_max_backoff_seconds < config.pod_initial_backoff_seconds:
        raise ConfigError(f"{source}: podMaxBackoffSeconds: must be at least podInitialBackoffSeconds "
                          f"({config.pod_initial_backoff_seconds})")
    return config


def load_config(path: Path | str | None) -> SchedulerConfig:
    """The configuration in `path` (YAML), or the defaults when path is None."""
    if path is None:
        return SchedulerConfig()
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"scheduler config {path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"scheduler config {path}: not valid YAML: {exc}") from None
    return parse_config(data, source=f"scheduler config {path}")
