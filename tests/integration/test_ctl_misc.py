"""`ctl explain`, `version`, `api-resources`, and what happens when no server answers."""

from procs import free_port


def test_explain_from_the_schema(ctl):
    r = ctl("explain", "pod.spec.containers", server=False)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:4] == ["KIND:       Pod", "VERSION:    v1", "", "FIELD: containers <[]Container>"]
    assert "DESCRIPTION:" in lines and "FIELDS:" in lines
    assert "  image\t<string> -required-" in lines
    assert "  name\t<string> -required-" in lines
    r = ctl("explain", "deploy.spec.replicas", server=False)
    assert r.stdout.startswith("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n\nFIELD: replicas <integer>")
    r = ctl("explain", "pod.spec.nothing", server=False)
    assert r.returncode == 1 and r.stderr.startswith('error: field "nothing" does not exist in pod.spec')


def test_version(ctl):
    r = ctl("version")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Client Version: ") and lines[1].startswith("Server Version: ")
    r = ctl("version", "--client", server=False)
    assert (r.returncode, len(r.stdout.splitlines())) == (0, 1)


def test_api_resources(ctl):
    r = ctl("api-resources")
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[1:]}
    assert r.stdout.splitlines()[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert rows["pods"] == ["pods", "po", "v1", "true", "Pod"]
    assert rows["deployments"] == ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    assert rows["nodes"] == ["nodes", "no", "v1", "false", "Node"]
    for short in ("rs", "ds", "ns", "cm", "svc"):
        assert any(short in row[1].split(",") for row in rows.values()), short
    names = ctl("api-resources", "-o", "name").stdout.splitlines()
    assert "deployments.apps" in names and "pods" in names


def test_unreachable_server(ctl):
    port = free_port()
    r = ctl("get", "pods", "--server", f"127.0.0.1:{port}", server=False)
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1
    assert r.stderr.startswith(f"error: the server at 127.0.0.1:{port} is unreachable")
    assert r.stderr.rstrip().endswith("is the control plane running? (start one with: ctl cluster up)")
