"""HorizontalPodAutoscaler on a real local cluster (`ctl cluster up`), as the Kubernetes walkthrough
("HorizontalPodAutoscaler Walkthrough") does it with `kubectl autoscale deployment php-apache
--cpu-percent=50 --min=1 --max=10`: a Deployment whose pods burn CPU while a ConfigMap says
`busy` is scaled from 1 to at least 3 by the controller on the agents' measured usage (the
numbers `ctl top pods` shows); with the ConfigMap set to `idle` it comes back to 1 after the
scale-down stabilisation window (made 20 s by `behavior`, 300 s by default).

Each pod burns at most 200m (its CPU limit), so the test costs the shared machine about one
core at its peak. The cluster lives in the test's temp dir; `cluster down` leaves nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import pytest

from procs import free_port, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_multinode_network import Ctl, image_archive, leftovers  # noqa: E402,F401 - a fixture

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root: node network namespaces, containers")]

IMAGE = "skiff.local/busybox:1.35"

LOAD = """
apiVersion: v1
kind: ConfigMap
metadata: {name: load}
data: {mode: %(mode)s}
"""

# Burns CPU while /etc/load/mode says busy (the ConfigMap, updated in place by the agent).
DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: php-apache}
spec:
  replicas: 1
  selector: {matchLabels: {run: php-apache}}
  template:
    metadata: {labels: {run: php-apache}}
    spec:
      terminationGracePeriodSeconds: 1
      volumes: [{name: load, configMap: {name: load}}]
      containers:
        - name: burner
          image: %(image)s
          command: ["sh", "-c", "while :; do if [ \\"$(cat /etc/load/mode)\\" = busy ]; then i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; else sleep 1; fi; done"]
          volumeMounts: [{name: load, mountPath: /etc/load}]
          resources:
            requests: {cpu: 100m}
            limits: {cpu: 200m}
"""

BEHAVIOR = """
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: php-apache}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: php-apache}
  minReplicas: 1
  maxReplicas: 4
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
  behavior:
    scaleDown: {stabilizationWindowSeconds: 20}
"""


def _replicas(ctl: Ctl) -> int:
    return int(json.loads(ctl("get", "deployment", "php-apache", "-o", "json").stdout)["spec"]["replicas"])


def test_hpa_scales_a_cpu_burning_deployment_up_and_back(tmp_path: Path, image_archive: Path) -> None:
    from cli.locallan import Lan
    cluster_dir = (tmp_path / "cluster").resolve()
    lan = Lan.for_directory(cluster_dir)
    ctl = Ctl(tmp_path / "config")
    try:
        ctl("cluster", "up", "--dir", str(cluster_dir), "--port", str(free_port()), "--nodes", "1", timeout=300)
        ctl("image", "load", str(image_archive))
        ctl("apply", "-f", "-", stdin=LOAD % {"mode": "busy"})
        ctl("apply", "-f", "-", stdin=DEPLOYMENT % {"image": IMAGE})
        made = ctl("autoscale", "deployment", "php-apache", "--cpu-percent=50", "--min=1", "--max=4")
        assert made.stdout.strip() == "horizontalpodautoscaler.autoscaling/php-apache autoscaled"
        ctl("apply", "-f", "-", stdin=BEHAVIOR)        # the same HPA, with a short scale-down window
        header = ctl("get", "hpa").stdout.splitlines()[0].split()
        assert header == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]

        started = time.monotonic()
        wait_for(lambda: _replicas(ctl) >= 3, timeout=300, interval=2, what="the HPA to scale up to 3 or more")
        up_after = time.monotonic() - started
        row = ctl("get", "hpa", "php-apache").stdout.splitlines()[1]
        assert "Deployment/php-apache" in row and "/50%" in row and "<unknown>" not in row, row
        events = ctl("get", "events", "-o", "json").stdout
        assert "SuccessfulRescale" in events and "cpu resource utilization (percentage of request) above target" \
            in events

        ctl("apply", "-f", "-", stdin=LOAD % {"mode": "idle"})
        idle_at = time.monotonic()
        wait_for(lambda: _replicas(ctl) == 1, timeout=300, interval=2, what="the HPA to scale back to 1")
        down_after = time.monotonic() - idle_at
        assert down_after >= 20, "scaled down before the stabilisation window passed"
        hpa = json.loads(ctl("get", "hpa", "php-apache", "-o", "json").stdout)
        assert hpa["status"]["desiredReplicas"] == 1
        conditions = {c["type"]: c for c in hpa["status"]["conditions"]}
        assert conditions["ScalingActive"]["status"] == "True"
        print(f"scaled up after {up_after:.0f}s, down {down_after:.0f}s after the load stopped")
    finally:
        down = ctl("cluster", "down", "--dir", str(cluster_dir), check=False, timeout=240)
    assert down.returncode == 0, down.stderr
    tag_parts = [f"skiff-{lan.tag}-", f"skb{lan.tag}", f"skv{lan.tag}"]
    assert leftovers(cluster_dir, tag_parts, f"skiff-{hashlib.sha256(str(cluster_dir).encode()).hexdigest()[:8]}") == []
