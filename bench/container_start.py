"""Container start latency: Skiff's runtime against `runc run`, same rootfs, same run.

    sudo .venv/bin/python bench/container_start.py          # 50 runs each
    sudo .venv/bin/python bench/container_start.py -n 200

One cycle is create -> start -> exit -> delete of a container running /bin/true on a
busybox root filesystem (Debian's busybox-static). For runc that is `runc run` with
the config `runc spec` writes (new pid, net, ipc, uts and mount namespaces, its own
cgroup), the rootfs path pointed at the busybox tree, args ["/bin/true"] and no
terminal. For Skiff it is, measured in the calling (agent) process:

- container:         run_container + wait + remove_container in an existing pod
                     sandbox (a pod's container start or restart);
- pod (like runc):   create_sandbox + run_container + wait + remove_container +
                     remove_sandbox, i.e. the same set of new namespaces runc makes
                     (the pod's own cgroup level comes on top);
- container, unhardened: the container cycle with no seccomp filter and no device
                     allow-list (`seccomp=None, devices=None`), to show what the
                     hardening every container now gets costs: the default seccomp
                     profile (compiled once, loaded per container) and the device
                     allow-list (devices.deny/allow on cgroup v1, the eBPF program on v2).
                     The first compile of the profile (once per agent) is timed apart.

The three are interleaved run by run so machine noise hits them alike, after three
uncounted warm-up rounds. As in production, each runtime keeps its state on a tmpfs
(runc: `--root`, like its default /run/runc; Skiff: `state_dir`, like /run/skiff)
and the writable layer on disk. Prints one JSON object (latencies in ms) and a
human summary; results also go to bench/results/container_start.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agent.cgroups import open_manager  # noqa: E402
from agent.runtime import ContainerSpec, Runtime, SandboxSpec  # noqa: E402
from bench.common import RESULTS_DIR, machine_info, percentiles, write_results  # noqa: E402

TMPFS = "/dev/shm"          # a tmpfs on every Linux; /run is not one on every machine
WARMUP = 3


def busybox_rootfs(target: Path) -> Path:
    """A root filesystem of /bin/busybox and one relative symlink per applet."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    bin_dir = target / "bin"
    bin_dir.mkdir(parents=True)
    shutil.copy2(busybox, bin_dir / "busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (bin_dir / applet).symlink_to("busybox")
    for d in ("etc", "proc", "sys", "dev", "tmp"):
        (target / d).mkdir()
    return target


def runc_bundle(bundle: Path, rootfs: Path, runc: str) -> None:
    subprocess.run([runc, "spec"], cwd=bundle, check=True)
    config_path = bundle / "config.json"
    config = json.loads(config_path.read_text())
    config["root"]["path"] = str(rootfs)
    config["process"]["args"] = ["/bin/true"]
    config["process"]["terminal"] = False
    config_path.write_text(json.dumps(config, indent=1))


async def bench(n: int, work: Path, run: Path, runc: str) -> dict:
    rootfs = busybox_rootfs(work / "rootfs")
    bundle = work / "bundle"
    bundle.mkdir()
    runc_bundle(bundle, rootfs, runc)

    cgroups = open_manager(parent=f"skiff-bench-{uuid.uuid4().hex[:6]}")
    runtime = Runtime(work / "skiff", cgroups=cgroups, state_dir=run / "skiff")
    await runtime.start()
    samples: dict[str, list[float]] = {"skiff_container": [], "skiff_container_unhardened": [],
                                       "skiff_pod": [], "runc": [],
                                       "skiff_pod.create_sandbox": [], "skiff_pod.remove_sandbox": []}
    try:
        await runtime.create_sandbox(SandboxSpec(pod_uid="bench", hostname="bench"))

        starts: dict[bool, list[float]] = {True: [], False: []}     # run_container alone

        async def container(pod_uid: str, i: int, *, hardened: bool = True) -> None:
            cid = f"{pod_uid}-{i}{'' if hardened else '-plain'}"
            extra = {} if hardened else {"seccomp": None, "devices": None}
            t = time.perf_counter()
            await runtime.run_container(ContainerSpec(id=cid, pod_uid=pod_uid, name="true" if hardened else "plain",
                                                      layers=[rootfs], args=["/bin/true"], **extra))
            if pod_uid == "bench" and i >= 0:
                starts[hardened].append(time.perf_counter() - t)
            status = await runtime.wait(cid, timeout=30)
            assert status.exit_code == 0, status
            await runtime.remove_container(cid, remove_log=True)

        for i in range(-WARMUP, n):
            # hardened and unhardened back to back, in alternating order, so neither always
            # follows the same neighbour (a runc run, a pod) on a busy machine
            order = (True, False) if i % 2 else (False, True)
            cycle: dict[bool, float] = {}
            for hardened in order:
                t0 = time.perf_counter()
                await container("bench", i, hardened=hardened)
                cycle[hardened] = time.perf_counter() - t0
            t1 = time.perf_counter()
            pod = f"pod{i + WARMUP}"
            await runtime.create_sandbox(SandboxSpec(pod_uid=pod, hostname=pod))
            t2 = time.perf_counter()
            await container(pod, i)
            t3 = time.perf_counter()
            await runtime.remove_sandbox(pod)
            t4 = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(runc, "--root", str(run / "runc"), "run", "-b", str(bundle),
                                                        f"bench-{i + WARMUP}", stdin=subprocess.DEVNULL)
            assert await proc.wait() == 0, "runc run failed"
            t5 = time.perf_counter()
            if i >= 0:
                for name, seconds in (("skiff_container", cycle[True]), ("skiff_pod", t4 - t1), ("runc", t5 - t4),
                                      ("skiff_container_unhardened", cycle[False]),
                                      ("skiff_pod.create_sandbox", t2 - t1),
                                      ("skiff_pod.remove_sandbox", t4 - t3)):
                    samples[name].append(seconds)
        await runtime.remove_sandbox("bench")
        # the container variants' starts (run_container until it answers "running")
        samples["skiff_container.start"] = starts[True]
        samples["skiff_container_unhardened.start"] = starts[False]
    finally:
        await runtime.close()
        await asyncio.to_thread(cgroups.remove, "")

    result: dict = {"bench": "container_start", "runs": n,
                    "cycle": "create+start+exit+delete of /bin/true on a busybox rootfs",
                    "runc_version": subprocess.run([runc, "--version"], capture_output=True,
                                                   text=True).stdout.splitlines()[0],
                    "machine": machine_info()}
    result["latency_ms"] = {name: percentiles(values) for name, values in samples.items()}
    p50 = {name: figures["p50"] for name, figures in result["latency_ms"].items()}
    result["runc_p50_over_skiff_container_p50"] = round(p50["runc"] / p50["skiff_container"], 2)
    result["runc_p50_over_skiff_pod_p50"] = round(p50["runc"] / p50["skiff_pod"], 2)
    result["hardening_p50_ms"] = round(p50["skiff_container"] - p50["skiff_container_unhardened"], 2)
    result["hardening_start_p50_ms"] = round(p50["skiff_container.start"] - p50["skiff_container_unhardened.start"],
                                             2)
    result["seccomp_first_compile_ms"] = first_compile_ms()
    return result


def first_compile_ms() -> float:
    """What compiling the default profile costs once per agent (here in a fresh process,
    libseccomp loaded): the cost every container start would pay without the cache."""
    code = ("import time; from agent.runtime import seccomp; from agent.runtime.capabilities import DEFAULT; "
            "t = time.perf_counter(); "
            "seccomp.compile_profile(seccomp.cache_key(seccomp.RUNTIME_DEFAULT, ['CAP_' + c for c in DEFAULT])); "
            "print((time.perf_counter() - t) * 1000)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return round(float(out.stdout), 1)


def summary(result: dict) -> str:
    lat = result["latency_ms"]
    lines = [f"{result['runs']} runs each, {result['cycle']}:"]
    for name, label in (("skiff_container", "skiff, container in a pod"),
                        ("skiff_container_unhardened", "  same, no seccomp/devices"),
                        ("skiff_pod", "skiff, whole pod"), ("runc", "runc run")):
        lines.append(f"  {label:28s} median {lat[name]['p50']:7.2f} ms   p90 {lat[name]['p90']:7.2f} ms")
    lines.append(f"  runc / skiff (medians): {result['runc_p50_over_skiff_container_p50']}x for a container, "
                 f"{result['runc_p50_over_skiff_pod_p50']}x for a whole pod")
    lines.append(f"  hardening (seccomp filter + device allow-list): {result['hardening_p50_ms']:+.2f} ms a cycle, "
                 f"{result['hardening_start_p50_ms']:+.2f} ms a start (run_container: "
                 f"{lat['skiff_container.start']['p50']} vs {lat['skiff_container_unhardened.start']['p50']} ms), "
                 f"medians")
    lines.append(f"  first compile of the default profile: {result['seccomp_first_compile_ms']} ms, once per agent")
    lines.append(f"  of the pod: create_sandbox {lat['skiff_pod.create_sandbox']['p50']} ms, "
                 f"remove_sandbox {lat['skiff_pod.remove_sandbox']['p50']} ms (medians)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50, help="runs of each (default 50)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("container_start.py needs root (namespaces, cgroups, mounts)")
    runc = shutil.which("runc") or next((p for p in ("/usr/sbin/runc", "/usr/bin/runc") if os.path.exists(p)), None)
    if runc is None:
        sys.exit("runc not found (apt-get install runc)")
    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as work, \
            tempfile.TemporaryDirectory(prefix="skiff-bench-", dir=TMPFS) as run:
        result = asyncio.run(bench(args.n, Path(work), Path(run), runc))
    path = write_results(RESULTS_DIR / "container_start.json", result)
    print(json.dumps(result))
    print("\n" + summary(result), file=sys.stderr)
    print(f"\nresults: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
