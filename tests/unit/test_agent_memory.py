"""What the node agent keeps and loads, so its idle memory stays small (issue 4: <= 60 MB):

- its uid -> pod map forgets a pod once the pod is deleted (it used to grow forever);
- importing the agent loads neither the object model (pydantic and every kind's model),
  nor httpx (only a registry pull needs it), nor PyYAML (only a registries file needs it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from agent.agent import Agent

REPO = Path(__file__).resolve().parents[2]


class FakeWorkers:
    def __init__(self) -> None:
        self.triggered: list[str] = []

    def trigger(self, uid: str) -> None:
        self.triggered.append(uid)


class FakeInformer:
    def __init__(self) -> None:
        self.store: dict[tuple[str, str], dict[str, Any]] = {}

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.store.get((namespace, name))


def pod(name: str, uid: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "default", "name": name, "uid": uid}}


def bare_agent() -> Agent:
    """An Agent with only what the pod handlers use (the real one opens cgroups and a runtime)."""
    agent = Agent.__new__(Agent)
    agent.uid_to_key = {}
    agent.workers = FakeWorkers()  # type: ignore[assignment]
    agent.pods = FakeInformer()    # type: ignore[assignment]
    return agent


def test_uid_map_forgets_deleted_pods_and_their_worker_still_cleans_up() -> None:
    agent = bare_agent()
    for i in range(100):
        p = pod(f"p{i}", f"uid-{i}")
        agent.pods.store[("default", f"p{i}")] = p
        agent._on_pod(p)
    assert len(agent.uid_to_key) == 100 and agent._pod("uid-7") is not None
    for i in range(100):
        p = agent.pods.store.pop(("default", f"p{i}"))   # the informer drops it, then calls on_delete
        agent._on_pod_deleted(p)
    assert agent.uid_to_key == {}
    # Each deleted pod's worker was triggered, and its sync finds no pod: it cleans up and ends.
    assert agent.workers.triggered[-100:] == [f"uid-{i}" for i in range(100)]
    assert agent._pod("uid-7") is None


def test_uid_map_forgets_a_uid_replaced_under_the_same_name() -> None:
    # After a relist the informer reports a pod deleted and re-created with the same name as an
    # update from the old uid to the new one.
    agent = bare_agent()
    old, new = pod("web", "uid-old"), pod("web", "uid-new")
    agent.pods.store[("default", "web")] = old
    agent._on_pod(old)
    agent.pods.store[("default", "web")] = new
    agent._on_pod_updated(old, new)
    assert agent.uid_to_key == {"uid-new": ("default", "web")}
    assert agent.workers.triggered == ["uid-old", "uid-old", "uid-new"]
    assert agent._pod("uid-old") is None and agent._pod("uid-new") is new


def test_importing_the_agent_loads_no_object_model_httpx_or_yaml() -> None:
    probe = "import json, sys; import agent.main, agent.agent; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True,
                                       check=True).stdout)
    heavy = [m for m in loaded if m.split(".")[0] in ("pydantic", "pydantic_core", "httpx", "yaml", "click",
                                                       "pygments")
             or m in ("api.registry", "api.resource", "api.kinds", "agent.images.registry")]
    assert heavy == [], "imported at start although the agent does not need them until later: " + ", ".join(heavy)


def test_what_is_loaded_lazily_still_works() -> None:
    # `from api import X` resolves the shortcut on first use; a registry pull imports the client then.
    probe = ("import api, agent.images.store as s\n"
             "from api import parse_object, ValidationFailed\n"
             "assert parse_object({'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'a'}}).name == 'a'\n"
             "assert api.lookup('pods').kind == 'Pod' and issubclass(ValidationFailed, ValueError)\n"
             "from agent.images.registry import RegistryClient\n")
    subprocess.run([sys.executable, "-c", probe], cwd=REPO, check=True, capture_output=True)
