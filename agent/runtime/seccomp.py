"""Seccomp profiles compiled to BPF, once per profile, in the agent.

A container's profile comes from `securityContext.seccompProfile` (the
container's, else the pod's): `RuntimeDefault` or nothing -> the default profile
(seccomp_default.py, Docker's), `Unconfined` -> none, `Localhost` -> a JSON file
in the Docker/OCI profile format from the agent's seccomp directory. Privileged
containers run unconfined, as in Kubernetes.

Compiling is libseccomp's job (Debian's libseccomp2, through the `pyseccomp`
ctypes binding): a profile becomes a `SyscallFilter` and `seccomp_export_bpf`
writes the classic-BPF program (struct sock_filter[]) out. That costs a few
milliseconds for the default profile, so `compile_profile` caches the bytes per
(profile, capability set): the rules depend on the capabilities ("includes":
{"caps": ["CAP_SYS_ADMIN"]} and "excludes" the same), the architecture and the
kernel version, nothing else. The LaunchPlan carries the program (base64) and
the container process only loads it - prctl(PR_SET_SECCOMP) just before execve
(container_init.py) - so no container start compiles anything and libseccomp is
never loaded in the fork server.

Supported from the profile format: defaultAction/defaultErrnoRet, architectures
or archMap (the native entry and its subArchitectures), syscalls with
names/action/errnoRet/args (index, value, valueTwo, op) and includes/excludes
on caps, arches and minKernel. Names unknown to libseccomp on this architecture
are skipped (as runc does); anything else malformed is an error naming the field.
"""

from __future__ import annotations

import base64
import json
import os
import platform
from pathlib import Path
from typing import Any

RUNTIME_DEFAULT = "runtime/default"
_ACTIONS = ("SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_LOG")
_OPS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ")
# The profile format names architectures like Go does.
_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "x86", "i386": "x86",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
_SCMP_NATIVE = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64", "s390x": "SCMP_ARCH_S390X",
                "ppc64le": "SCMP_ARCH_PPC64LE", "riscv64": "SCMP_ARCH_RISCV64"}
EPERM = 1
CACHE_SIZE = 64         # distinct (profile, capabilities) pairs; a node sees a handful
_CACHE: dict[tuple[str, tuple[str, ...]], str] = {}


class ProfileError(ValueError):
    """A seccomp profile that cannot be used; the message names the field."""


def load_localhost(seccomp_dir: Path, name: str) -> dict[str, Any]:
    """The profile `localhostProfile: name` names, read from `seccomp_dir` (kubelet's
    <root>/seccomp); it must stay inside that directory."""
    if not name or name.startswith("/") or ".." in Path(name).parts:
        raise ProfileError(f"seccompProfile.localhostProfile {name!r}: must be a relative path inside "
                           f"the agent's seccomp directory, without '..'")
    path = seccomp_dir / name
    try:
        text = path.read_text()
    except OSError as err:
        raise ProfileError(f"seccompProfile.localhostProfile {name!r}: cannot read {path}: "
                           f"{err.strerror or err}") from None
    try:
        profile = json.loads(text)
    except ValueError as err:
        raise ProfileError(f"seccompProfile.localhostProfile {name!r}: {path} is not JSON: {err}") from None
    if not isinstance(profile, dict) or "defaultAction" not in profile:
        raise ProfileError(f"seccompProfile.localhostProfile {name!r}: {path} has no defaultAction "
                           "(expected a Docker/OCI seccomp profile)")
    return profile


def cache_key(profile: str | dict[str, Any], caps: list[str] | tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    if profile != RUNTIME_DEFAULT and not isinstance(profile, dict):
        raise ProfileError(f"seccomp profile {profile!r}: expected {RUNTIME_DEFAULT!r} or a profile document")
    text = RUNTIME_DEFAULT if profile == RUNTIME_DEFAULT else json.dumps(profile, sort_keys=True)
    return text, tuple(sorted(caps))


def cached(key: tuple[str, tuple[str, ...]]) -> str | None:
    """The compiled program for `key` (base64, as the LaunchPlan carries it), if compiled before."""
    return _CACHE.get(key)


def compile_profile(key: tuple[str, tuple[str, ...]]) -> str:
    """The BPF program (struct sock_filter[], base64) for `key` (see `cache_key`): of a profile
    (RUNTIME_DEFAULT or a document) for a container holding those capabilities
    ("CAP_CHOWN", ...). Blocking (milliseconds): call it from a thread on a cache miss."""
    found = _CACHE.get(key)
    if found is not None:
        return found
    text, caps = key
    if text == RUNTIME_DEFAULT:
        from agent.runtime import seccomp_default
        profile = seccomp_default.profile()
    else:
        profile = json.loads(text)
    program = base64.b64encode(_compile(profile, set(caps))).decode()
    if len(_CACHE) >= CACHE_SIZE:
        _CACHE.clear()
    _CACHE[key] = program
    return program


def _kernel_version() -> tuple[int, int]:
    release = platform.release().split("-")[0].split(".")
    return int(release[0]), int(release[1]) if len(release) > 1 and release[1].isdigit() else 0


def _action(name: Any, errno_ret: Any, *, where: str, default_errno: int) -> int:
    import pyseccomp
    if name not in _ACTIONS:
        raise ProfileError(f"{where}: unknown action {name!r} (one of {', '.join(_ACTIONS)})")
    if name == "SCMP_ACT_ERRNO":
        code = default_errno if errno_ret is None else errno_ret
        if not isinstance(code, int) or not 0 <= code < 4096:
            raise ProfileError(f"{where}: errnoRet {code!r} must be an errno number")
        return pyseccomp.ERRNO(code)
    return {"SCMP_ACT_ALLOW": pyseccomp.ALLOW, "SCMP_ACT_KILL": pyseccomp.KILL_THREAD,
            "SCMP_ACT_KILL_THREAD": pyseccomp.KILL_THREAD, "SCMP_ACT_KILL_PROCESS": pyseccomp.KILL_PROCESS,
            "SCMP_ACT_TRAP": pyseccomp.TRAP, "SCMP_ACT_LOG": pyseccomp.LOG}[name]


def _applies(rule: dict[str, Any], caps: set[str], arch: str, kernel: tuple[int, int], where: str) -> bool:
    includes, excludes = rule.get("includes") or {}, rule.get("excludes") or {}
    if not isinstance(includes, dict) or not isinstance(excludes, dict):
        raise ProfileError(f"{where}: includes/excludes must be objects")
    if includes.get("caps") and not all(c in caps for c in includes["caps"]):
        return False
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if includes.get("minKernel"):
        try:
            wanted = tuple(int(p) for p in str(includes["minKernel"]).split(".")[:2])
        except ValueError:
            raise ProfileError(f"{where}: includes.minKernel {includes['minKernel']!r}: expected 'X.Y'") from None
        if kernel < wanted:
            return False
    if excludes.get("caps") and any(c in caps for c in excludes["caps"]):
        return False
    if excludes.get("arches") and arch in excludes["arches"]:
        return False
    return True


def _args(rule: dict[str, Any], where: str) -> list[list]:
    """The rule's argument conditions as groups that are ANDed; several conditions on
    the same argument index become separate rules (ORed), as Docker does."""
    import pyseccomp
    conditions = []
    for i, arg in enumerate(rule.get("args") or []):
        here = f"{where}.args[{i}]"
        if not isinstance(arg, dict) or arg.get("op") not in _OPS:
            raise ProfileError(f"{here}: op must be one of {', '.join(_OPS)}")
        index, value, two = arg.get("index"), arg.get("value", 0), arg.get("valueTwo", 0)
        if not isinstance(index, int) or not 0 <= index <= 5:
            raise ProfileError(f"{here}: index {index!r} must be 0..5")
        if not all(isinstance(v, int) and 0 <= v < 2**64 for v in (value, two)):
            raise ProfileError(f"{here}: value and valueTwo must be unsigned 64-bit integers")
        op = getattr(pyseccomp, arg["op"].removeprefix("SCMP_CMP_"))
        conditions.append(pyseccomp.Arg(index, op, value, two))
    indexes = [a._arg for a in conditions]
    if len(set(indexes)) != len(indexes):
        return [[c] for c in conditions]
    return [conditions]


def _libseccomp():
    try:
        import pyseccomp
    except (ImportError, OSError) as err:       # OSError: libseccomp.so.2 itself is missing
        raise ProfileError(f"cannot compile seccomp profiles: {err} (the agent needs libseccomp2 "
                           "and the pyseccomp package: deploy/install.sh installs both)") from None
    return pyseccomp


def _compile(profile: dict[str, Any], caps: set[str]) -> bytes:
    pyseccomp = _libseccomp()
    machine = platform.machine()
    arch = _GO_ARCH.get(machine, machine)
    kernel = _kernel_version()
    default_errno = profile.get("defaultErrnoRet", EPERM)
    default = _action(profile.get("defaultAction"), default_errno, where="defaultAction", default_errno=EPERM)
    flt = pyseccomp.SyscallFilter(default)
    # Syscalls of an architecture the profile does not list are refused (the filter's
    # "bad arch" action, KILL): a 32-bit binary cannot slip past a 64-bit rule set.
    native = _SCMP_NATIVE.get(machine)
    arches: list[str] = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == native:
            arches += entry.get("subArchitectures") or []
    for name in arches:
        if name == native:
            continue
        number = getattr(pyseccomp.Arch, str(name).removeprefix("SCMP_ARCH_"), None)
        if number is None:
            raise ProfileError(f"architectures: unknown architecture {name!r}")
        flt.add_arch(number)
    for i, rule in enumerate(profile.get("syscalls") or []):
        where = f"syscalls[{i}]"
        if not isinstance(rule, dict):
            raise ProfileError(f"{where}: must be an object")
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        if not names or not all(isinstance(n, str) for n in names):
            raise ProfileError(f"{where}: names must be a non-empty list of syscall names")
        if not _applies(rule, caps, arch, kernel, where):
            continue
        action = _action(rule.get("action"), rule.get("errnoRet"), where=f"{where}.action",
                         default_errno=EPERM)
        if action == default:
            continue            # libseccomp refuses rules that repeat the default action
        for name in names:
            for group in _args(rule, where):
                try:
                    flt.add_rule(action, name, *group)
                except (OSError, ValueError, RuntimeError):
                    # unknown on this architecture (e.g. a 32-bit-only call); runc skips these too
                    if pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name) < 0:
                        continue            # libseccomp knows no such call here
                    raise ProfileError(f"{where}: libseccomp refused the rule for {name}") from None
    fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
    try:
        with os.fdopen(fd, "w+b", closefd=False) as f:
            flt.export_bpf(f)
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    program = b"".join(chunks)
    if not program or len(program) % 8:
        raise ProfileError(f"libseccomp exported a program of {len(program)} bytes")
    return program
