"""A real OCI registry for tests and benchmarks: Debian's docker-registry on 127.0.0.1.

`LocalRegistry` starts /usr/bin/docker-registry (distribution 2.x) on a free
loopback port with its storage in a temp dir, and pushes images to it with
skopeo (from an OCI layout, as OCI or as Docker schema2). The `registry`
fixture in tests/conftest.py gives one per test session; tests that need
their own (a mirror, a registry that goes down) make one with `start()` and
`stop()` in a finally. Stopped by PID, never by name.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from pathlib import Path

from procs import free_port, stop_process, wait_for

REGISTRY_BINARY = "/usr/bin/docker-registry"


def registry_available() -> str | None:
    """None when the registry and skopeo are installed, else the reason to skip."""
    if not Path(REGISTRY_BINARY).exists():
        return "docker-registry not installed (apt-get install docker-registry)"
    if shutil.which("skopeo") is None:
        return "skopeo not installed (apt-get install skopeo)"
    return None


class LocalRegistry:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    def start(self) -> LocalRegistry:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: error, accesslog: {disabled: true}}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.storage}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: '{self.host}', secret: test-only-secret}}\n")
        self.log = open(self.root / "registry.log", "wb")
        self.proc = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        try:
            wait_for(self._ready, timeout=15, what=f"docker-registry on {self.host}")
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {(self.root / 'registry.log').read_text()[-2000:]}")
        with urllib.request.urlopen(f"{self.url}/v2/", timeout=1) as response:
            return response.status == 200

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
            self.log.close()

    def push(self, source: str, name: str, *, fmt: str | None = None, all_platforms: bool = False) -> None:
        """skopeo copy `source` (e.g. "oci:/dir:tag") to this registry as `name` ("team/app:v1")."""
        args = ["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false"]
        if fmt:
            args += ["--format", fmt]
        if all_platforms:
            args += ["--all"]
        done = subprocess.run(args + [source, f"docker://{self.host}/{name}"], capture_output=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"skopeo copy {source} failed: {done.stderr.decode(errors='replace').strip()}")

    def blob_data(self, digest: str) -> Path:
        """Where the registry keeps a blob's bytes (to corrupt it in tests)."""
        hexpart = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"
