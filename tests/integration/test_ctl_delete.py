"""`ctl delete`: by name, label selector or file; waiting until objects are gone."""

import time


def pod(name, *, node="", selector="skiff-test/never: \"true\""):
    placement = f"  nodeName: {node}\n" if node else f"  nodeSelector:\n    {selector}\n"
    return (f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: doomed}}\nspec:\n{placement}"
            f"  containers:\n  - name: c\n    image: busybox\n")


def cm(name, app):
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels: {{app: {app}}}\n"


def test_deleting_an_unscheduled_pod_finishes_at_once(ctl, namespace):
    assert ctl("apply", "-f", "-", "-n", namespace, input=pod("idle")).returncode == 0
    started = time.monotonic()
    r = ctl("delete", "pod", "idle", "-n", namespace)  # --wait is the default
    assert (r.returncode, r.stdout, r.stderr) == (0, 'pod "idle" deleted\n', "")
    assert time.monotonic() - started < 15
    assert ctl("get", "pod", "idle", "-n", namespace).returncode == 1


def test_a_pod_on_a_node_waits_for_its_agent(ctl, namespace):
    """No agent runs node "ghost": the pod stays Terminating until forced."""
    assert ctl("apply", "-f", "-", "-n", namespace, input=pod("bound", node="ghost")).returncode == 0
    r = ctl("delete", "pod", "bound", "-n", namespace, "--wait=false")
    assert (r.returncode, r.stdout) == (0, 'pod "bound" deleted\n')
    row = ctl("get", "pod", "bound", "-n", namespace, "--no-headers").stdout.split()
    assert row[:3] == ["bound", "0/1", "Terminating"]
    r = ctl("delete", "pod", "bound", "-n", namespace, "--timeout=1s")
    assert r.returncode == 1
    assert r.stderr == "error: timed out waiting for the condition on pods/bound\n"
    r = ctl("delete", "pod", "bound", "-n", namespace, "--force")
    assert (r.returncode, r.stdout) == (0, 'pod "bound" deleted\n')
    assert ctl("get", "pod", "bound", "-n", namespace).returncode == 1


def test_delete_by_selector_by_file_and_missing(ctl, namespace, tmp_path):
    f = tmp_path / "cms.yaml"
    f.write_text("---\n".join([cm("a1", "a"), cm("a2", "a"), cm("b1", "b")]))
    assert ctl("apply", "-f", str(f), "-n", namespace).returncode == 0
    r = ctl("delete", "cm", "-l", "app=a", "-n", namespace)
    assert (r.returncode, r.stdout) == (0, 'configmap "a1" deleted\nconfigmap "a2" deleted\n')
    r = ctl("delete", "-f", str(f), "-n", namespace)
    assert r.returncode == 1  # a1 and a2 are gone already
    assert r.stdout == 'configmap "b1" deleted\n'
    assert r.stderr.splitlines() == ['Error from server (NotFound): configmaps "a1" not found',
                                     'Error from server (NotFound): configmaps "a2" not found']
    r = ctl("delete", "-f", str(f), "-n", namespace, "--ignore-not-found")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    r = ctl("delete", "cm", "-l", "app=a", "-n", namespace)
    assert (r.returncode, r.stderr) == (0, f"No resources found in {namespace} namespace.\n")
    r = ctl("delete", "cm/x", "--dry-run=server", "-n", namespace)
    assert r.returncode == 1 and 'configmaps "x" not found' in r.stderr
