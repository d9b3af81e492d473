"""Skiff's own container runtime: namespaces, cgroups and overlayfs, no Docker/containerd/runc.

The agent's pod logic uses the `RuntimeService` protocol (service.py), which `Runtime`
(runtime.py) implements on the machine and agent/fakeruntime.py in memory, and the
dataclasses of specs.py; the rest is how the real runtime works, one concept per module:

- service.py         RuntimeService: the verbs the agent drives containers through (CRI's shape)
- runtime.py         the asyncio API: sandboxes, containers, exec, status, re-adoption
- specs.py           ContainerSpec, SandboxSpec, Mount, Sandbox, ContainerStatus, errors
- plan.py            a spec resolved into the LaunchPlan the fork server carries out
- client.py          starting and talking to the fork server (agent side)
- forkserver.py      the single-threaded process that forks supervisors and exec workers
- supervisor.py      one per container: start, report, log, record the exit
- container_init.py  the container process between fork and exec, in a fixed order
- rootfs.py          overlay root, /proc, /sys, /dev, binds, pivot_root
- sandbox.py         a pod's shared namespaces pinned by bind mounts, /etc files
- execution.py       exec into a running container (the fork-server side)
- execprocess.py     ExecProcess, the agent's handle on an exec'd process
- state.py           the lifecycle state machine and its atomic state files
- crilog.py          CRI-format logs with rotation
- capabilities.py    capability names, the default set, applying them
- linux.py           ctypes bindings for unshare, setns, mount, pivot_root, prctl, capset
"""

# The names below are loaded on first use rather than imported here: the fork server
# (`python -m agent.runtime.forkserver`) imports this package too, and must stay
# small - forking a process costs time in proportion to its memory, and the agent
# side pulls in asyncio.
_EXPORTS = {
    "Runtime": "agent.runtime.runtime",
    "RuntimeService": "agent.runtime.service",
    "ExecProcess": "agent.runtime.execprocess",
    "ContainerNotFound": "agent.runtime.specs",
    "ContainerSpec": "agent.runtime.specs",
    "ContainerStatus": "agent.runtime.specs",
    "Mount": "agent.runtime.specs",
    "Sandbox": "agent.runtime.specs",
    "SandboxSpec": "agent.runtime.specs",
    "StartError": "agent.runtime.specs",
    "State": "agent.runtime.state",
}

__all__ = sorted(_EXPORTS)  # noqa: PLE0605 - names loaded on first use (below)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'agent.runtime' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(_EXPORTS[name]), name)
