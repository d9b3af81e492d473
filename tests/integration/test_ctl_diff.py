"""`ctl diff -f`: 0 no differences, 1 differences, 2 an error."""

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: "busybox:1.36"}]
"""


def test_diff_exit_codes_and_unified_output(ctl, namespace, tmp_path):
    f = tmp_path / "web.yaml"
    f.write_text(DEPLOY)
    name = f"apps.v1.Deployment.{namespace}.web"

    r = ctl("diff", "-f", str(f), "-n", namespace)  # not there yet: everything is new
    assert r.returncode == 1, r.stderr
    assert r.stdout.startswith(f"diff -u -N LIVE/{name} MERGED/{name}\n--- LIVE/{name}\n+++ MERGED/{name}\n")
    assert "+kind: Deployment\n" in r.stdout and "+  replicas: 2\n" in r.stdout

    assert ctl("apply", "-f", str(f), "-n", namespace).returncode == 0
    r = ctl("diff", "-f", str(f), "-n", namespace)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")

    f.write_text(DEPLOY.replace("replicas: 2", "replicas: 3").replace("busybox:1.36", "busybox:1.37"))
    r = ctl("diff", "-f", str(f), "-n", namespace)
    assert r.returncode == 1
    changed = [line for line in r.stdout.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert sorted(changed) == sorted(["+  replicas: 3", "+      - image: busybox:1.37", "-  replicas: 2",
                                      "-      - image: busybox:1.36"])
    assert "resourceVersion" not in r.stdout and "last-applied" not in r.stdout

    live = ctl("get", "deploy", "web", "-n", namespace, "-o", "json").stdout
    assert '"replicas": 2' in live  # diff wrote nothing

    f.write_text(DEPLOY.replace("replicas: 2", "replicas: lots"))
    r = ctl("diff", "-f", str(f), "-n", namespace)
    assert r.returncode == 2 and r.stderr.startswith(f'error: {f}:5: Deployment "web" is invalid: spec.replicas')
