"""Tables, the tab writer behind them, and the yaml/json/name printers."""

import json
from datetime import datetime, timezone

import yaml

from api.registry import lookup
from api.printing.columns import columns_for, format_selector
from cli.printers import Table, as_list, to_json, to_name, to_yaml
from cli.printers.tabwriter import TabWriter, align

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def test_align_pads_columns_three_spaces_and_leaves_last_column_alone():
    text = align([["NAME", "STATUS", "AGE"], ["default", "Active", "5d"], ["kube-system", "Active", "12m"]])
    assert text == ("NAME          STATUS   AGE\n"
                    "default       Active   5d\n"
                    "kube-system   Active   12m\n")


def test_align_minimum_width_six():
    assert align([["A", "B"], ["x", "y"]]) == "A     B\nx     y\n"


def test_tabwriter_blocks_break_on_lines_without_cells():
    w = TabWriter(padding=2)
    w.write("Name:\tweb\nNamespace:\tdefault\nContainers:\n  c:\n    Image:\tbusybox\n    Port:\t<none>\n")
    assert w.flush() == ("Name:       web\n"
                         "Namespace:  default\n"
                         "Containers:\n"
                         "  c:\n"
                         "    Image:  busybox\n"
                         "    Port:   <none>\n")


def test_tabwriter_remembers_widths_between_flushes():
    w = TabWriter(min_width=6, padding=3, remember_widths=True)
    w.write("NAME\tAGE\nlong-name-here\t1s\n")
    first = w.flush()
    w.write("x\t2s\n")
    assert w.flush() == "x" + " " * 16 + "2s\n"
    assert first.splitlines()[1] == "long-name-here   1s"


def pod(name, phase="Running", labels=None, ns="default"):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": "2024-05-01T11:57:00Z",
                         "labels": labels or {}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeName": "n1"},
            "status": {"phase": phase, "podIP": "198.18.0.5",
                       "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0,
                                              "state": {"running": {}}}]}}


def test_pod_table_default_and_wide():
    table = Table("Pod")
    assert table.render([pod("web")], at=NOW) == ("NAME   READY   STATUS    RESTARTS   AGE\n"
                                                  "web    1/1     Running   0          3m\n")
    wide = Table("Pod", wide=True).render([pod("web")], at=NOW).splitlines()
    assert wide[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE",
                               "READINESS", "GATES"]
    assert wide[1].split() == ["web", "1/1", "Running", "0", "3m", "198.18.0.5", "n1", "<none>", "<none>"]


def test_table_namespace_labels_and_kind_prefix():
    table = Table("Pod", with_namespace=True, show_labels=True, name_prefix="pod")
    lines = table.render([pod("web", labels={"tier": "front", "app": "web"}), pod("db", ns="data")],
                         at=NOW).splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "LABELS"]
    assert lines[1].split() == ["default", "pod/web", "1/1", "Running", "0", "3m", "app=web,tier=front"]
    assert lines[2].split()[-1] == "<none>"


def test_table_without_headers():
    assert Table("Pod", headers=False).render([pod("web")], at=NOW) == "web   1/1   Running   0     3m\n"


def test_header_columns_per_kind():
    def headers(kind, wide=False):
        return [c.header for c in columns_for(kind, wide=wide)]
    assert headers("Deployment") == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert headers("Deployment", True)[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert headers("ReplicaSet") == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert headers("DaemonSet") == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE",
                                    "NODE SELECTOR", "AGE"]
    assert headers("Job") == ["NAME", "COMPLETIONS", "DURATION", "AGE"]
    assert headers("Service") == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert headers("Node") == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert headers("Node", True)[5:] == ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION",
                                         "CONTAINER-RUNTIME"]
    assert headers("Event") == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert headers("Event", True) == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE", "MESSAGE",
                                      "FIRST SEEN", "COUNT", "NAME"]
    assert headers("Namespace") == ["NAME", "STATUS", "AGE"]
    assert headers("Secret") == ["NAME", "TYPE", "DATA", "AGE"]
    assert headers("Lease") == ["NAME", "HOLDER", "AGE"]


def test_workload_and_service_cells():
    deploy = {"metadata": {"name": "web", "creationTimestamp": "2024-05-01T10:00:00Z"},
              "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"spec": {"containers": [{"name": "a", "image": "x:1"},
                                                            {"name": "b", "image": "y:2"}]}}},
              "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    rows = Table("Deployment", wide=True).render([deploy], at=NOW).splitlines()
    assert rows[1].split() == ["web", "2/3", "3", "2", "120m", "a,b", "x:1,y:2", "app=web"]
    svc = {"metadata": {"name": "s", "creationTimestamp": "2024-05-01T11:59:30Z"},
           "spec": {"type": "NodePort", "clusterIP": "10.0.0.7", "selector": {"app": "web"},
                    "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}}
    rows = Table("Service", wide=True).render([svc], at=NOW).splitlines()
    assert rows[1].split() == ["s", "NodePort", "10.0.0.7", "<none>", "80:30080/TCP,53/UDP", "30s", "app=web"]
    job = {"metadata": {"name": "j", "creationTimestamp": "2024-05-01T11:00:00Z"},
           "spec": {"completions": 3}, "status": {"succeeded": 1, "startTime": "2024-05-01T11:00:00Z",
                                                  "completionTime": "2024-05-01T11:01:30Z"}}
    assert Table("Job").render([job], at=NOW).splitlines()[1].split() == ["j", "1/3", "90s", "60m"]
    node = {"metadata": {"name": "n1", "creationTimestamp": "2024-05-01T11:00:00Z",
                         "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "0.1"}}}
    assert Table("Node").render([node], at=NOW).splitlines()[1].split() == [
        "n1", "Ready,SchedulingDisabled", "control-plane", "60m", "0.1"]
    for status, shown in (("False", "NotReady"), ("Unknown", "NotReady")):    # Unknown: the agent went silent
        node["status"]["conditions"] = [{"type": "Ready", "status": status}]
        assert Table("Node").render([node], at=NOW).splitlines()[1].split()[1] == f"{shown},SchedulingDisabled"
    node["status"]["conditions"] = []
    assert Table("Node").render([node], at=NOW).splitlines()[1].split()[1] == "Unknown,SchedulingDisabled"


def test_format_selector():
    assert format_selector({"matchLabels": {"b": "2", "a": "1"}}) == "a=1,b=2"
    assert format_selector({"matchExpressions": [{"key": "env", "operator": "In", "values": ["a", "b"]}]}) == \
        "env in (a,b)"
    assert format_selector(None) == ""


def test_structured_printers():
    obj = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "web"}, "data": "line1\nline2\n"}
    text = to_yaml(obj)
    assert text.startswith("apiVersion: v1\ndata: |\n  line1\n  line2\n")
    assert yaml.safe_load(text) == obj
    assert json.loads(to_json(obj)) == obj
    assert '\n    "apiVersion": "v1"' in to_json(obj)
    assert to_name(lookup("deploy"), {"metadata": {"name": "web"}}) == "deployment.apps/web"
    assert to_name(lookup("po"), obj) == "pod/web"
    assert as_list([obj])["kind"] == "List"


def test_jsonpath_templates():
    from cli.printers.jsonpath import evaluate, render
    pods = as_list([pod("a", labels={"app.kubernetes.io/name": "x"}), pod("b")])
    assert render("{.items[*].metadata.name}", pods) == "a b"
    assert render("{.items[0].spec.containers[0].image}", pods) == "busybox"
    assert render("{.items[-1].metadata.name}", pods) == "b"
    assert render('{range .items[*]}{.metadata.name}{"\\t"}{.status.phase}{"\\n"}{end}', pods) == \
        "a\tRunning\nb\tRunning\n"
    assert render("name={.metadata.name}!", pod("c")) == "name=c!"
    assert render(r"{.metadata.labels.app\.kubernetes\.io/name}", pods["items"][0]) == "x"
    assert render("{.metadata.labels}", pod("d", labels={"k": "v"})) == '{"k":"v"}'
    assert evaluate(".nothing.here", pods) == []


def test_custom_columns_and_bad_specs():
    import pytest

    from cli.errors import CliError
    from cli.printers.jsonpath import custom_columns, render
    text = custom_columns("NAME:.metadata.name,IMAGES:{.spec.containers[*].image},X:.spec.nope",
                          [pod("a"), pod("b")])
    assert text == "NAME   IMAGES    X\na      busybox   <none>\nb      busybox   <none>\n"
    with pytest.raises(CliError, match="HEADER:PATH"):
        custom_columns("NAME", [])
    with pytest.raises(CliError, match="unclosed"):
        render("{.a", {})
    with pytest.raises(CliError, match="unrecognized expression"):
        render("{.a[x]}", {})
