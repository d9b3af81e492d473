"""The workload and cluster kinds: defaults, validation messages at exact paths, round trips.

Manifests are built from small dicts and changed by one mutation per table row,
so each row shows the one thing that is wrong and the error it must produce.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest

from api import ValidationFailed, parse_object
from api.container import default_pull_policy

Doc = dict[str, Any]


def pod(**spec: Any) -> Doc:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}], **spec}}


def template(restart_policy: str | None = None) -> Doc:
    spec: Doc = {"containers": [{"name": "app", "image": "busybox:1.36"}]}
    if restart_policy:
        spec["restartPolicy"] = restart_policy
    return {"metadata": {"labels": {"app": "web"}}, "spec": spec}


def deployment(**spec: Any) -> Doc:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(), **spec}}


def replicaset(**spec: Any) -> Doc:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-1"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(), **spec}}


def daemonset(**spec: Any) -> Doc:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agentd"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(), **spec}}


def job(**spec: Any) -> Doc:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
            "spec": {"template": template("Never"), **spec}}


def service(**spec: Any) -> Doc:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], **spec}}


def node(**spec: Any) -> Doc:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "spec": spec}


def errors_of(doc: Doc) -> list[tuple[str, str]]:
    with pytest.raises(ValidationFailed) as err:
        parse_object(doc)
    return [(e.path, e.message) for e in err.value.errors]


def changed(doc: Doc, change: Callable[[Doc], Any]) -> Doc:
    doc = copy.deepcopy(doc)
    change(doc)
    return doc


def c0(doc: Doc) -> Doc:
    """The first container of a pod or of a workload's template."""
    spec = doc["spec"]["template"]["spec"] if "template" in doc["spec"] else doc["spec"]
    return spec["containers"][0]


# ---- defaults ----

@pytest.mark.parametrize("image, policy", [
    ("busybox", "Always"),
    ("busybox:latest", "Always"),
    ("busybox:1.36", "IfNotPresent"),
    ("busybox@sha256:" + "a" * 64, "IfNotPresent"),
    ("busybox:latest@sha256:" + "a" * 64, "Always"),   # Kubernetes looks at the tag only
    ("127.0.0.1:5000/busybox", "Always"),              # a registry port is not a tag
    ("127.0.0.1:5000/busybox:1.36", "IfNotPresent"),
    ("127.0.0.1:5000/team/app:latest", "Always"),
])
def test_image_pull_policy_defaults_from_the_tag(image, policy):
    assert default_pull_policy(image) == policy
    obj = parse_object(changed(pod(), lambda d: c0(d).update(image=image)))
    assert obj.spec.containers[0].image_pull_policy == policy


def test_explicit_image_pull_policy_is_kept():
    obj = parse_object(changed(pod(), lambda d: c0(d).update(image="busybox", imagePullPolicy="Never")))
    assert obj.spec.containers[0].image_pull_policy == "Never"


def test_pod_defaults():
    out = parse_object(pod()).to_json()["spec"]
    assert out["restartPolicy"] == "Always"
    assert out["terminationGracePeriodSeconds"] == 30
    assert out["dnsPolicy"] == "ClusterFirst"
    assert out["schedulerName"] == "default-scheduler"
    assert out["serviceAccountName"] == "default"
    container = out["containers"][0]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "File"
    assert "status" not in parse_object(pod()).to_json()


def test_container_part_defaults():
    doc = pod(volumes=[{"name": "cfg", "configMap": {"name": "app"}}, {"name": "scratch"},
                       {"name": "s", "secret": {"secretName": "creds"}}],
              tolerations=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}])
    c0(doc).update(ports=[{"containerPort": 8080}],
                   livenessProbe={"httpGet": {"port": 8080}},
                   readinessProbe={"tcpSocket": {"port": "http"}},
                   resources={"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m"}})
    spec = parse_object(doc).to_json()["spec"]
    c = spec["containers"][0]
    assert c["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert c["livenessProbe"] == {"httpGet": {"path": "/", "port": 8080, "scheme": "HTTP"}, "initialDelaySeconds": 0,
                                  "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1,
                                  "failureThreshold": 3}
    # A limit without a request becomes the request; a given request stays.
    assert c["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert spec["volumes"][0]["configMap"]["defaultMode"] == 420
    assert spec["volumes"][1] == {"name": "scratch", "emptyDir": {}}   # no source means emptyDir
    assert spec["volumes"][2]["secret"]["defaultMode"] == 420
    assert spec["tolerations"][0]["operator"] == "Equal"


def test_host_network_turns_container_ports_into_host_ports():
    doc = pod(hostNetwork=True)
    c0(doc)["ports"] = [{"containerPort": 53, "protocol": "UDP"}]
    obj = parse_object(doc)
    assert obj.spec.containers[0].ports[0].host_port == 53
    assert obj.to_json()["spec"]["hostNetwork"] is True


def test_quantities_are_kept_as_text():
    doc = pod()
    c0(doc)["resources"] = {"requests": {"cpu": 0.5, "memory": 134217728}, "limits": {"cpu": 1, "memory": "1.5Gi"}}
    res = parse_object(doc).to_json()["spec"]["containers"][0]["resources"]
    assert res == {"requests": {"cpu": "0.5", "memory": "134217728"}, "limits": {"cpu": "1", "memory": "1.5Gi"}}


def test_deployment_defaults():
    spec = parse_object(deployment()).to_json()["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    assert (spec["minReadySeconds"], spec["revisionHistoryLimit"], spec["progressDeadlineSeconds"]) == (0, 10, 600)
    assert spec["template"]["spec"]["restartPolicy"] == "Always"
    partial = parse_object(deployment(strategy={"rollingUpdate": {"maxSurge": 1}})).to_json()["spec"]
    assert partial["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": "25%"}
    recreate = parse_object(deployment(strategy={"type": "Recreate"})).to_json()["spec"]
    assert recreate["strategy"] == {"type": "Recreate"}


def test_other_workload_defaults():
    rs = parse_object(replicaset()).to_json()["spec"]
    assert (rs["replicas"], rs["minReadySeconds"]) == (1, 0)
    ds = parse_object(daemonset()).to_json()["spec"]
    assert ds["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert ds["revisionHistoryLimit"] == 10
    js = parse_object(job()).to_json()["spec"]
    assert (js["parallelism"], js["completions"], js["backoffLimit"], js["completionMode"]) == (1, 1, 6, "NonIndexed")
    assert "selector" not in js   # filled in by the server or controller from the Job's uid


@pytest.mark.parametrize("given, parallelism, completions", [
    ({}, 1, 1),
    ({"parallelism": 3}, 3, None),          # a work queue
    ({"completions": 5}, 1, 5),
    ({"parallelism": 2, "completions": 4}, 2, 4),
])
def test_job_parallelism_and_completions(given, parallelism, completions):
    spec = parse_object(job(**given)).spec
    assert (spec.parallelism, spec.completions) == (parallelism, completions)


def test_service_defaults():
    spec = parse_object(service(ports=[{"name": "web", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP",
                                                      "targetPort": "dns"}])).to_json()["spec"]
    assert spec["type"] == "ClusterIP" and spec["sessionAffinity"] == "None"
    assert spec["ports"][0] == {"name": "web", "protocol": "TCP", "port": 80, "targetPort": 80}
    assert spec["ports"][1]["targetPort"] == "dns"


def test_explicit_aliases_use_kubernetes_spelling():
    doc = pod(hostPID=True, hostIPC=True)
    c0(doc)["ports"] = [{"containerPort": 80, "hostPort": 8080, "hostIP": "198.18.0.1"}]
    doc["status"] = {"phase": "Running", "hostIP": "198.18.0.1", "podIP": "198.18.1.2",
                     "podIPs": [{"ip": "198.18.1.2"}],
                     "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0, "image": "busybox:1.36",
                                            "imageID": "sha256:abc", "containerID": "skiff://1",
                                            "state": {"terminated": {"exitCode": 0, "containerID": "skiff://1"}}}]}
    out = parse_object(doc).to_json()
    assert out["spec"]["hostPID"] and out["spec"]["hostIPC"]
    assert out["spec"]["containers"][0]["ports"][0]["hostIP"] == "198.18.0.1"
    assert {"hostIP", "podIP", "podIPs"} <= set(out["status"])
    assert out["status"]["containerStatuses"][0]["imageID"] == "sha256:abc"
    n = parse_object(node(podCIDR="198.18.1.0/24", podCIDRs=["198.18.1.0/24"], providerID="skiff://n1")
                     | {"status": {"nodeInfo": {"machineID": "m", "bootID": "b", "systemUUID": "u"},
                                   "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}).to_json()
    assert n["spec"]["podCIDR"] == "198.18.1.0/24" and n["spec"]["providerID"] == "skiff://n1"
    assert n["status"]["nodeInfo"]["machineID"] == "m"
    assert n["status"]["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    s = parse_object(service(clusterIP="198.18.100.1", externalIPs=["198.18.0.9"])).to_json()["spec"]
    assert s["clusterIP"] == "198.18.100.1" and s["externalIPs"] == ["198.18.0.9"]


# ---- validation: one wrong thing, one exact error ----

def _affinity(op: str) -> Doc:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": op, "values": ["ssd"]}]}]}}}


def _add_container(d: Doc, **c: Any) -> None:
    d["spec"]["containers"].append({"name": "second", "image": "busybox", **c})


AFFINITY_PATH = ("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
                 ".nodeSelectorTerms[0].matchExpressions[0]")

POD_ERRORS = [
    # (description, change, path, message — exact, or the start of the message when it ends with "...")
    ("missing image", lambda d: c0(d).pop("image"), "spec.containers[0].image", "field required"),
    ("empty image", lambda d: c0(d).update(image=""), "spec.containers[0].image", "field required"),
    ("unknown field", lambda d: c0(d).update(imagee="busybox"), "spec.containers[0].imagee", "unknown field"),
    ("unknown spec field", lambda d: d["spec"].update(restartPolcy="Never"), "spec.restartPolcy", "unknown field"),
    ("bad restartPolicy", lambda d: d["spec"].update(restartPolicy="Sometimes"), "spec.restartPolicy",
     'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'),
    ("no containers", lambda d: d["spec"].update(containers=[]), "spec.containers",
     "field required: must have at least one container"),
    ("spec missing", lambda d: d.pop("spec"), "spec", "field required"),
    ("bad container name", lambda d: c0(d).update(name="App_1"), "spec.containers[0].name",
     'Invalid value: "App_1": a lowercase RFC 1123 label...'),
    ("duplicate container", lambda d: _add_container(d, name="app"), "spec.containers[1].name",
     'Duplicate value: "app"'),
    ("init and app container share a name",
     lambda d: d["spec"].update(initContainers=[{"name": "app", "image": "busybox"}]), "spec.containers[0].name",
     'Duplicate value: "app"'),
    ("port too large", lambda d: c0(d).update(ports=[{"containerPort": 70000}]), "spec.containers[0].ports[0].containerPort",
     "Invalid value: 70000: must be between 1 and 65535, inclusive"),
    ("port zero", lambda d: c0(d).update(ports=[{"containerPort": 0}]), "spec.containers[0].ports[0].containerPort",
     "Invalid value: 0: must be between 1 and 65535, inclusive"),
    ("port not a number", lambda d: c0(d).update(ports=[{"containerPort": "http"}]),
     "spec.containers[0].ports[0].containerPort", "Input should be a valid integer..."),
    ("bad protocol", lambda d: c0(d).update(ports=[{"containerPort": 80, "protocol": "ICMP"}]),
     "spec.containers[0].ports[0].protocol", 'Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"'),
    ("bad port name", lambda d: c0(d).update(ports=[{"containerPort": 80, "name": "HTTP"}]),
     "spec.containers[0].ports[0].name", 'Invalid value: "HTTP": must be an IANA_SVC_NAME...'),
    ("request above limit",
     lambda d: c0(d).update(resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
     "spec.containers[0].resources.requests[cpu]", 'Invalid value: "2": must be less than or equal to cpu limit of 1'),
    ("bad quantity", lambda d: c0(d).update(resources={"limits": {"memory": "lots"}}),
     "spec.containers[0].resources.limits[memory]", "quantities must match the regular expression..."),
    ("negative quantity", lambda d: c0(d).update(resources={"requests": {"cpu": "-1"}}),
     "spec.containers[0].resources.requests[cpu]", 'Invalid value: "-1": must be greater than or equal to 0'),
    ("unknown resource", lambda d: c0(d).update(resources={"requests": {"cpus": "1"}}),
     "spec.containers[0].resources.requests[cpus]", 'Invalid value: "cpus": must be a standard resource type...'),
    ("mount of a missing volume", lambda d: c0(d).update(volumeMounts=[{"name": "data", "mountPath": "/data"}]),
     "spec.containers[0].volumeMounts[0].name", 'Not found: "data"'),
    ("duplicate volume",
     lambda d: d["spec"].update(volumes=[{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]),
     "spec.volumes[1].name", 'Duplicate value: "v"'),
    ("two volume sources",
     lambda d: d["spec"].update(volumes=[{"name": "v", "emptyDir": {}, "hostPath": {"path": "/tmp"}}]),
     "spec.volumes[0].hostPath", "Forbidden: may not specify more than 1 volume type"),
    ("bad volume name", lambda d: d["spec"].update(volumes=[{"name": "V_1"}]), "spec.volumes[0].name",
     'Invalid value: "V_1"...'),
    ("bad hostPath type", lambda d: d["spec"].update(volumes=[{"name": "v", "hostPath": {"path": "/x", "type": "Dir"}}]),
     "spec.volumes[0].hostPath.type", 'Unsupported value: "Dir"...'),
    ("item path escapes the volume",
     lambda d: d["spec"].update(volumes=[{"name": "v", "configMap": {"name": "c", "items": [{"key": "k", "path": "../x"}]}}]),
     "spec.volumes[0].configMap.items[0].path", "Invalid value: \"../x\": must not contain '..'"),
    ("bad defaultMode", lambda d: d["spec"].update(volumes=[{"name": "v", "secret": {"secretName": "s", "defaultMode": 4096}}]),
     "spec.volumes[0].secret.defaultMode", "Invalid value: 4096: must be a number between 0 and 0777..."),
    ("probe without handler", lambda d: c0(d).update(livenessProbe={"periodSeconds": 5}),
     "spec.containers[0].livenessProbe", "field required: must specify a handler type"),
    ("probe with two handlers",
     lambda d: c0(d).update(readinessProbe={"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}}),
     "spec.containers[0].readinessProbe.tcpSocket", "Forbidden: may not specify more than 1 handler type"),
    ("liveness successThreshold", lambda d: c0(d).update(livenessProbe={"exec": {"command": ["true"]},
                                                                        "successThreshold": 2}),
     "spec.containers[0].livenessProbe.successThreshold", "Invalid value: 2: must be 1"),
    ("probe period zero", lambda d: c0(d).update(livenessProbe={"exec": {"command": ["true"]}, "periodSeconds": 0}),
     "spec.containers[0].livenessProbe.periodSeconds", "Invalid value: 0: must be greater than or equal to 1"),
    ("probe port out of range", lambda d: c0(d).update(startupProbe={"httpGet": {"port": 0}}),
     "spec.containers[0].startupProbe.httpGet.port", "Invalid value: 0: must be between 1 and 65535, inclusive"),
    ("probe port is a float", lambda d: c0(d).update(startupProbe={"tcpSocket": {"port": 80.5}}),
     "spec.containers[0].startupProbe.tcpSocket.port", "must be an integer or a string, got 80.5"),
    ("preStop without handler", lambda d: c0(d).update(lifecycle={"preStop": {}}),
     "spec.containers[0].lifecycle.preStop", "field required: must specify a handler type"),
    ("probe on an init container",
     lambda d: d["spec"].update(initContainers=[{"name": "init", "image": "busybox",
                                                 "readinessProbe": {"exec": {"command": ["true"]}}}]),
     "spec.initContainers[0].readinessProbe", "Forbidden: may not be set for init containers"),
    ("env value and valueFrom",
     lambda d: c0(d).update(env=[{"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]),
     "spec.containers[0].env[0].valueFrom", 'Invalid value: "": may not be specified when `value` is not empty'),
    ("env bad fieldPath", lambda d: c0(d).update(env=[{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.foo"}}}]),
     "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath", 'Unsupported value: "spec.foo"...'),
    ("envFrom with two sources",
     lambda d: c0(d).update(envFrom=[{"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}]),
     "spec.containers[0].envFrom[0]", "Invalid value: \"\": must specify exactly one of: `configMapRef` or `secretRef`"),
    ("negative grace period", lambda d: d["spec"].update(terminationGracePeriodSeconds=-1),
     "spec.terminationGracePeriodSeconds", "Invalid value: -1: must be greater than or equal to 0"),
    ("zero active deadline", lambda d: d["spec"].update(activeDeadlineSeconds=0), "spec.activeDeadlineSeconds",
     "Invalid value: 0: must be greater than or equal to 1"),
    ("bad dnsPolicy", lambda d: d["spec"].update(dnsPolicy="Google"), "spec.dnsPolicy", 'Unsupported value: "Google"...'),
    ("bad affinity operator", lambda d: d["spec"].update(affinity=_affinity("Is")), f"{AFFINITY_PATH}.operator",
     'Unsupported value: "Is": supported values: "In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"'),
    ("Exists with values", lambda d: d["spec"].update(affinity=_affinity("Exists")), f"{AFFINITY_PATH}.values",
     "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"),
    ("Gt with a word", lambda d: d["spec"].update(affinity=_affinity("Gt")), f"{AFFINITY_PATH}.values[0]",
     "must be an integer for 'Gt' and 'Lt', got 'ssd'"),
    ("no node selector terms",
     lambda d: d["spec"].update(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
         "nodeSelectorTerms": []}}}),
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms",
     "field required: must have at least one node selector term"),
    ("matchFields on a label",
     lambda d: d["spec"].update(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
         "nodeSelectorTerms": [{"matchFields": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}),
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].key",
     'Unsupported value: "zone": supported values: "metadata.name"'),
    ("preferred weight", lambda d: d["spec"].update(affinity={"nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 0, "preference": {
            "matchExpressions": [{"key": "disk", "operator": "Exists"}]}}]}}),
     "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
     "Invalid value: 0: must be in the range 1-100"),
    ("pod affinity selector operator",
     lambda d: d["spec"].update(affinity={"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
         {"labelSelector": {"matchExpressions": [{"key": "app", "operator": "Is"}]},
          "topologyKey": "kubernetes.io/hostname"}]}}),
     "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector"
     ".matchExpressions[0].operator", 'Unsupported value: "Is"...'),
    ("pod affinity without topologyKey",
     lambda d: d["spec"].update(affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
         {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": ""}]}}),
     "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey",
     "field required: can not be empty"),
    ("Exists toleration with a value",
     lambda d: d["spec"].update(tolerations=[{"key": "gpu", "operator": "Exists", "value": "yes"}]),
     "spec.tolerations[0].operator", "Invalid value: \"yes\": value must be empty when `operator` is 'Exists'"),
    ("toleration without key must be Exists", lambda d: d["spec"].update(tolerations=[{"value": "x"}]),
     "spec.tolerations[0].operator", 'Invalid value: "Equal": operator must be Exists when `key` is empty...'),
    ("tolerationSeconds needs NoExecute",
     lambda d: d["spec"].update(tolerations=[{"key": "k", "operator": "Exists", "effect": "NoSchedule",
                                              "tolerationSeconds": 5}]),
     "spec.tolerations[0].effect", "Invalid value: \"NoSchedule\": effect must be 'NoExecute' when "
                                   "`tolerationSeconds` is set"),
    ("bad toleration operator", lambda d: d["spec"].update(tolerations=[{"key": "k", "operator": "Equals"}]),
     "spec.tolerations[0].operator", 'Unsupported value: "Equals": supported values: "Equal", "Exists"'),
    ("maxSkew zero",
     lambda d: d["spec"].update(topologySpreadConstraints=[{"maxSkew": 0, "topologyKey": "zone",
                                                            "whenUnsatisfiable": "DoNotSchedule"}]),
     "spec.topologySpreadConstraints[0].maxSkew", "Invalid value: 0: must be greater than or equal to 1"),
    ("bad whenUnsatisfiable",
     lambda d: d["spec"].update(topologySpreadConstraints=[{"maxSkew": 1, "topologyKey": "zone",
                                                            "whenUnsatisfiable": "Never"}]),
     "spec.topologySpreadConstraints[0].whenUnsatisfiable", 'Unsupported value: "Never"...'),
    ("bad nodeSelector label", lambda d: d["spec"].update(nodeSelector={"disk": "-ssd"}), "spec.nodeSelector",
     "invalid label value '-ssd'..."),
    ("bad hostname", lambda d: d["spec"].update(hostname="Web.1"), "spec.hostname", 'Invalid value: "Web.1"...'),
    ("host port clash", lambda d: (c0(d).update(ports=[{"containerPort": 80, "hostPort": 8080}]),
                                   _add_container(d, ports=[{"containerPort": 81, "hostPort": 8080}])),
     "spec.containers[1].ports[0].hostPort", 'Duplicate value: "8080/TCP"'),
    ("runAsUser negative", lambda d: d["spec"].update(securityContext={"runAsUser": -1}),
     "spec.securityContext.runAsUser", "Invalid value: -1: must be greater than or equal to 0"),
    ("privileged without escalation",
     lambda d: c0(d).update(securityContext={"privileged": True, "allowPrivilegeEscalation": False}),
     "spec.containers[0].securityContext", "Invalid value: \"\": cannot set `allowPrivilegeEscalation` to false "
                                           "and `privileged` to true"),
    ("seccomp Localhost without a profile",
     lambda d: d["spec"].update(securityContext={"seccompProfile": {"type": "Localhost"}}),
     "spec.securityContext.seccompProfile.localhostProfile", "field required: must be set when seccomp type is Localhost"),
    ("seccomp profile escaping its directory",
     lambda d: c0(d).update(securityContext={"seccompProfile": {"type": "Localhost", "localhostProfile": "../x"}}),
     "spec.containers[0].securityContext.seccompProfile.localhostProfile",
     'Invalid value: "../x": must be a relative path without \'..\''),
    ("seccomp localhostProfile with another type",
     lambda d: c0(d).update(securityContext={"seccompProfile": {"type": "RuntimeDefault", "localhostProfile": "x"}}),
     "spec.containers[0].securityContext.seccompProfile.localhostProfile",
     'Invalid value: "x": can only be set when seccomp type is Localhost'),
    ("seccomp unknown type",
     lambda d: c0(d).update(securityContext={"seccompProfile": {"type": "Tight"}}),
     "spec.containers[0].securityContext.seccompProfile.type", "Unsupported value: \"Tight\"..."),
    ("bad pod name", lambda d: d["metadata"].update(name="Web_1"), "metadata.name", 'Invalid value: "Web_1"...'),
    ("bad label", lambda d: d["metadata"].update(labels={"app": "a b"}), "metadata.labels",
     "invalid label value 'a b'..."),
    ("bad status phase", lambda d: d.update(status={"phase": "Done"}), "status.phase",
     'Unsupported value: "Done": supported values: "Pending", "Running", "Succeeded", "Failed", "Unknown"'),
]


def _assert_error(errors: list[tuple[str, str]], path: str, message: str) -> None:
    for got_path, got_message in errors:
        if got_path == path and (got_message == message or
                                 message.endswith("...") and got_message.startswith(message[:-3])):
            return
    raise AssertionError(f"expected {path}: {message}\n got {errors}")


@pytest.mark.parametrize("change, path, message", [row[1:] for row in POD_ERRORS], ids=[row[0] for row in POD_ERRORS])
def test_pod_errors(change, path, message):
    errors = errors_of(changed(pod(), change))
    _assert_error(errors, path, message)
    assert len(errors) == 1, errors


def _template_spec(d: Doc) -> Doc:
    return d["spec"]["template"]["spec"]


WORKLOAD_ERRORS = [
    ("negative replicas", deployment(replicas=-1), "spec.replicas", "Invalid value: -1: must be greater than or equal to 0"),
    ("negative rs replicas", replicaset(replicas=-2), "spec.replicas", "Invalid value: -2: must be greater than or equal to 0"),
    ("surge and unavailable both 0", deployment(strategy={"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}),
     "spec.strategy.rollingUpdate.maxUnavailable", "Invalid value: 0: may not be 0 when maxSurge is 0"),
    ("both 0 as percentages", deployment(strategy={"rollingUpdate": {"maxSurge": "0%", "maxUnavailable": 0}}),
     "spec.strategy.rollingUpdate.maxUnavailable", "Invalid value: 0: may not be 0 when maxSurge is 0"),
    ("bad surge", deployment(strategy={"rollingUpdate": {"maxSurge": "ten"}}), "spec.strategy.rollingUpdate.maxSurge",
     'Invalid value: "ten": a valid percent string must be a numeric string followed by an ending \'%\'...'),
    ("surge over 100%", deployment(strategy={"rollingUpdate": {"maxUnavailable": "120%"}}),
     "spec.strategy.rollingUpdate.maxUnavailable", 'Invalid value: "120%": must not be greater than 100%'),
    ("negative surge", deployment(strategy={"rollingUpdate": {"maxSurge": -1}}), "spec.strategy.rollingUpdate.maxSurge",
     "Invalid value: -1: must be greater than or equal to 0"),
    ("recreate with rollingUpdate", deployment(strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}),
     "spec.strategy.rollingUpdate", "Forbidden: may not be specified when strategy `type` is 'Recreate'"),
    ("bad strategy type", deployment(strategy={"type": "BlueGreen"}), "spec.strategy.type",
     'Unsupported value: "BlueGreen": supported values: "RollingUpdate", "Recreate"'),
    ("progress deadline not above minReady", deployment(minReadySeconds=600), "spec.progressDeadlineSeconds",
     "Invalid value: 600: must be greater than minReadySeconds"),
    ("selector mismatch", changed(deployment(), lambda d: d["spec"]["selector"].update(matchLabels={"app": "api"})),
     "spec.template.metadata.labels", 'Invalid value: {"app":"web"}: selector does not match template labels'),
    ("selector mismatch by expression",
     changed(replicaset(), lambda d: d["spec"].update(selector={"matchExpressions": [
         {"key": "app", "operator": "NotIn", "values": ["web"]}]})),
     "spec.template.metadata.labels", 'Invalid value: {"app":"web"}: selector does not match template labels'),
    ("empty selector", deployment(selector={}), "spec.selector", "Invalid value: {}: empty selector is invalid for "
                                                                 "deployment"),
    ("missing selector", changed(deployment(), lambda d: d["spec"].pop("selector")), "spec.selector", "field required"),
    ("missing template", changed(replicaset(), lambda d: d["spec"].pop("template")), "spec.template", "field required"),
    ("template image missing", changed(deployment(), lambda d: c0(d).pop("image")),
     "spec.template.spec.containers[0].image", "field required"),
    ("template unknown field", changed(deployment(), lambda d: c0(d).update(imagee="x")),
     "spec.template.spec.containers[0].imagee", "unknown field"),
    ("deployment restartPolicy", changed(deployment(), lambda d: _template_spec(d).update(restartPolicy="Never")),
     "spec.template.spec.restartPolicy", 'Unsupported value: "Never": supported values: "Always"'),
    ("deployment activeDeadlineSeconds",
     changed(deployment(), lambda d: _template_spec(d).update(activeDeadlineSeconds=5)),
     "spec.template.spec.activeDeadlineSeconds", "Forbidden: activeDeadlineSeconds in Deployment is not Supported"),
    ("daemonset both zero", daemonset(updateStrategy={"rollingUpdate": {"maxUnavailable": 0}}),
     "spec.updateStrategy.rollingUpdate.maxUnavailable", "Invalid value: 0: may not be 0 when maxSurge is 0"),
    ("daemonset surge and unavailable", daemonset(updateStrategy={"rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}}),
     "spec.updateStrategy.rollingUpdate.maxSurge", "Invalid value: 1: may not be set when maxUnavailable is non-zero"),
    ("daemonset bad strategy", daemonset(updateStrategy={"type": "Recreate"}), "spec.updateStrategy.type",
     'Unsupported value: "Recreate": supported values: "RollingUpdate", "OnDelete"'),
    ("job restartPolicy Always", changed(job(), lambda d: _template_spec(d).pop("restartPolicy")),
     "spec.template.spec.restartPolicy", 'Unsupported value: "Always": supported values: "OnFailure", "Never"'),
    ("job parallelism < 0", job(parallelism=-1), "spec.parallelism",
     "Invalid value: -1: must be greater than or equal to 0"),
    ("job completions < 0", job(completions=-1), "spec.completions",
     "Invalid value: -1: must be greater than or equal to 0"),
    ("job backoffLimit < 0", job(backoffLimit=-1), "spec.backoffLimit",
     "Invalid value: -1: must be greater than or equal to 0"),
    ("job selector mismatch", job(selector={"matchLabels": {"job": "other"}}), "spec.template.metadata.labels",
     'Invalid value: {"app":"web"}: selector does not match template labels'),
    ("indexed job without completions", job(completionMode="Indexed", parallelism=2), "spec.completions",
     "field required: when completion mode is Indexed"),
    ("job bad completionMode", job(completionMode="Ordered"), "spec.completionMode",
     'Unsupported value: "Ordered": supported values: "NonIndexed", "Indexed"'),
    ("bad deployment name", changed(deployment(), lambda d: d["metadata"].update(name="-web")), "metadata.name",
     'Invalid value: "-web"...'),
    ("service name with a dot", changed(service(), lambda d: d["metadata"].update(name="web.v1")), "metadata.name",
     'Invalid value: "web.v1": a lowercase RFC 1123 label...'),
    ("service bad type", service(type="Magic"), "spec.type", 'Unsupported value: "Magic"...'),
    ("service port 0", service(ports=[{"port": 0}]), "spec.ports[0].port",
     "Invalid value: 0: must be between 1 and 65535, inclusive"),
    ("service needs port names", service(ports=[{"name": "a", "port": 80}, {"port": 81}]), "spec.ports[1].name",
     "field required: names are required when there is more than one port"),
    ("service duplicate port names", service(ports=[{"name": "a", "port": 80}, {"name": "a", "port": 81}]),
     "spec.ports[1].name", 'Duplicate value: "a"'),
    ("service nodePort on ClusterIP", service(ports=[{"port": 80, "nodePort": 30080}]), "spec.ports[0].nodePort",
     "Forbidden: may not be used when `type` is 'ClusterIP'"),
    ("service bad targetPort name", service(ports=[{"port": 80, "targetPort": "Web_Port"}]), "spec.ports[0].targetPort",
     'Invalid value: "Web_Port": must be an IANA_SVC_NAME...'),
    ("service bad clusterIP", service(clusterIP="10.0.0.300"), "spec.clusterIP",
     'Invalid value: "10.0.0.300": must be a valid IP address...'),
    ("service without ports", service(ports=[]), "spec.ports", "field required"),
    ("externalName missing", service(type="ExternalName", ports=None), "spec.externalName", "field required"),
    ("node bad taint effect", node(taints=[{"key": "gpu", "effect": "NoRun"}]), "spec.taints[0].effect",
     'Unsupported value: "NoRun": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"'),
    ("node taint without key", node(taints=[{"key": "", "effect": "NoSchedule"}]), "spec.taints[0].key",
     "field required"),
    ("node duplicate taint", node(taints=[{"key": "a", "effect": "NoSchedule"}, {"key": "a", "effect": "NoSchedule",
                                                                                  "value": "x"}]),
     "spec.taints[1]", 'Duplicate value: "a:NoSchedule"'),
    ("node bad podCIDR", node(podCIDR="198.18.1.1/24"), "spec.podCIDR", 'Invalid value: "198.18.1.1/24"...'),
    ("node bad capacity", changed(node(), lambda d: d.update(status={"capacity": {"cpu": "two"}})),
     "status.capacity[cpu]", "quantities must match the regular expression..."),
    ("node bad address type", changed(node(), lambda d: d.update(status={"addresses": [{"type": "IP", "address": "x"}]})),
     "status.addresses[0].type", 'Unsupported value: "IP"...'),
]


@pytest.mark.parametrize("doc, path, message", [row[1:] for row in WORKLOAD_ERRORS],
                         ids=[row[0] for row in WORKLOAD_ERRORS])
def test_workload_and_cluster_errors(doc, path, message):
    errors = errors_of(doc)
    _assert_error(errors, path, message)
    assert len(errors) == 1, errors


def test_every_error_is_reported_at_once():
    doc = pod(restartPolicy="Sometimes")
    c0(doc).pop("image")
    c0(doc)["imagee"] = "x"
    assert set(errors_of(doc)) >= {("spec.containers[0].image", "field required"),
                                   ("spec.containers[0].imagee", "unknown field")}
    doc = deployment(replicas=-1)
    c0(doc)["ports"] = [{"containerPort": 0}]
    doc["spec"]["selector"] = {"matchLabels": {"app": "api"}}
    paths = {path for path, _ in errors_of(doc)}
    # pydantic errors come first; semantic checks run only on a well-formed object
    assert paths == {"spec.replicas"}
    paths = {path for path, _ in errors_of(changed(doc, lambda d: d["spec"].update(replicas=1)))}
    assert paths == {"spec.template.metadata.labels", "spec.template.spec.containers[0].ports[0].containerPort"}


def test_validation_failure_names_the_object():
    with pytest.raises(ValidationFailed) as err:
        parse_object(changed(deployment(), lambda d: c0(d).pop("image")))
    assert (err.value.kind, err.value.name) == ("Deployment", "web")
    assert str(err.value) == "spec.template.spec.containers[0].image: field required"


# ---- valid objects, and round trips ----

FULL_POD = pod(
    initContainers=[{"name": "init", "image": "busybox:1.36", "command": ["sh", "-c", "true"],
                     "resources": {"requests": {"cpu": "1", "memory": "32Mi"}}}],
    volumes=[{"name": "data", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
             {"name": "host", "hostPath": {"path": "/var/log", "type": "Directory"}},
             {"name": "cfg", "configMap": {"name": "app", "items": [{"key": "a", "path": "a.conf", "mode": 0o600}],
                                           "optional": True}},
             {"name": "creds", "secret": {"secretName": "creds"}},
             {"name": "info", "downwardAPI": {"items": [
                 {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                 {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory",
                                                      "divisor": "1Mi"}}]}}],
    restartPolicy="OnFailure", activeDeadlineSeconds=600, nodeSelector={"disk": "ssd"},
    affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["2"]}],
             "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]},
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}}]},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "web"}},
                                                "topologyKey": "kubernetes.io/hostname", "namespaces": ["default"]}}]}},
    tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30},
                 {"operator": "Exists"}],
    topologySpreadConstraints=[{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway",
                                "labelSelector": {"matchLabels": {"app": "web"}}}],
    priority=100, priorityClassName="high", hostname="web-0", subdomain="web",
    securityContext={"runAsUser": 1000, "runAsGroup": 1000, "supplementalGroups": [5], "fsGroup": 2000,
                     "runAsNonRoot": True},
    imagePullSecrets=[{"name": "regcred"}],
)
c0(FULL_POD).update(
    command=["sh", "-c"], args=["sleep 3600"], workingDir="/srv", stdin=True, tty=True,
    ports=[{"containerPort": 8080, "name": "http"}, {"containerPort": 53, "protocol": "UDP", "hostPort": 5353}],
    env=[{"name": "MODE", "value": "prod"},
         {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
         {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
         {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
         {"name": "KEY", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "key"}}},
         {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password", "optional": False}}}],
    envFrom=[{"configMapRef": {"name": "app"}, "prefix": "APP_"}, {"secretRef": {"name": "creds"}}],
    resources={"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}},
    volumeMounts=[{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/etc/app", "readOnly": True}],
    livenessProbe={"httpGet": {"path": "/healthz", "port": "http", "httpHeaders": [{"name": "X", "value": "1"}]},
                   "initialDelaySeconds": 5},
    readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 2},
    startupProbe={"exec": {"command": ["cat", "/tmp/ready"]}, "failureThreshold": 30},
    lifecycle={"postStart": {"exec": {"command": ["true"]}}, "preStop": {"sleep": {"seconds": 2}}},
    securityContext={"runAsUser": 1000, "runAsNonRoot": True, "readOnlyRootFilesystem": True,
                     "allowPrivilegeEscalation": False, "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}},
)
FULL_POD["status"] = {
    "phase": "Running", "hostIP": "198.18.0.1", "podIP": "198.18.1.5", "podIPs": [{"ip": "198.18.1.5"}],
    "startTime": "2024-01-01T00:00:00Z", "qosClass": "Burstable",
    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:01Z"}],
    "initContainerStatuses": [{"name": "init", "ready": False, "restartCount": 0, "image": "busybox:1.36",
                               "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
    "containerStatuses": [{"name": "app", "ready": True, "restartCount": 2, "image": "busybox:1.36", "started": True,
                           "state": {"running": {"startedAt": "2024-01-01T00:00:02Z"}},
                           "lastState": {"terminated": {"exitCode": 137, "signal": 9, "reason": "OOMKilled"}}}],
}

VALID = {
    "pod": pod(),
    "full pod": FULL_POD,
    "deployment": deployment(replicas=3, strategy={"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}, paused=True),
    "recreate deployment": deployment(strategy={"type": "Recreate"}),
    "replicaset": replicaset(replicas=0),
    "daemonset": daemonset(updateStrategy={"type": "OnDelete"}),
    "daemonset surge": daemonset(updateStrategy={"rollingUpdate": {"maxUnavailable": 0, "maxSurge": "10%"}}),
    "job": job(completions=5, parallelism=2, activeDeadlineSeconds=100, ttlSecondsAfterFinished=60,
               selector={"matchLabels": {"app": "web"}}),
    "work queue job": job(parallelism=4),
    "indexed job": job(completions=3, completionMode="Indexed", suspend=True),
    "service": service(ports=[{"name": "http", "port": 80, "targetPort": "http"},
                              {"name": "dns", "port": 53, "protocol": "UDP"}], sessionAffinity="ClientIP"),
    "nodeport service": service(type="NodePort", ports=[{"port": 80, "nodePort": 30080}]),
    "headless service": service(clusterIP="None", ports=None),
    "externalname service": service(type="ExternalName", externalName="db.example.com", selector=None, ports=None),
    "node": node(podCIDR="198.18.1.0/24", podCIDRs=["198.18.1.0/24"], unschedulable=True,
                 taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute",
                          "timeAdded": "2024-01-01T00:00:00Z"}])
    | {"status": {"capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                  "allocatable": {"cpu": "1900m", "memory": "3.5Gi", "pods": 110},
                  "conditions": [{"type": "Ready", "status": "True", "reason": "AgentReady",
                                  "lastHeartbeatTime": "2024-01-01T00:00:00Z"}],
                  "addresses": [{"type": "InternalIP", "address": "198.18.0.1"},
                                {"type": "Hostname", "address": "n1"}],
                  "nodeInfo": {"kernelVersion": "6.1.0", "osImage": "Debian GNU/Linux 12", "architecture": "amd64",
                               "operatingSystem": "linux", "containerRuntimeVersion": "skiff://0.1.0",
                               "kubeletVersion": "v0.1.0"},
                  "images": [{"names": ["busybox:1.36"], "sizeBytes": 4261550}]}},
}


@pytest.mark.parametrize("doc", VALID.values(), ids=VALID.keys())
def test_valid_objects_round_trip(doc):
    obj = parse_object(doc)
    again = parse_object(obj.to_json())
    assert again == obj
    assert again.to_json() == obj.to_json()
    assert type(obj).__name__ == doc["kind"]


def test_full_pod_keeps_what_it_was_given():
    out = parse_object(FULL_POD).to_json()
    c = out["spec"]["containers"][0]
    assert c["env"][1]["valueFrom"] == {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}
    assert c["livenessProbe"]["httpGet"]["port"] == "http"
    assert out["spec"]["volumes"][2]["configMap"]["items"][0]["mode"] == 0o600
    assert out["status"]["containerStatuses"][0]["lastState"]["terminated"]["signal"] == 9


# ---- helpers the scheduler and agent use ----

def _pod_with(containers: list[Doc], init: list[Doc] | None = None) -> Any:
    doc = pod(containers=[{"name": f"c{i}", "image": "busybox", **c} for i, c in enumerate(containers)])
    if init:
        doc["spec"]["initContainers"] = [{"name": f"i{i}", "image": "busybox", **c} for i, c in enumerate(init)]
    return parse_object(doc)


def _res(requests: Doc | None = None, limits: Doc | None = None) -> Doc:
    out: Doc = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return {"resources": out}


@pytest.mark.parametrize("containers, init, want", [
    ([{}], None, {"cpu": 0, "memory": 0}),
    ([_res({"cpu": "250m", "memory": "64Mi"})], None, {"cpu": 250, "memory": 64 * 2**20}),
    ([_res({"cpu": "250m"}), _res({"cpu": "0.5", "memory": "1G"})], None, {"cpu": 750, "memory": 10**9}),
    ([_res(limits={"cpu": "1", "memory": "128Mi"})], None, {"cpu": 1000, "memory": 128 * 2**20}),  # limits -> requests
    # init containers run alone: the largest counts if it is above the sum
    ([_res({"cpu": "100m"}), _res({"cpu": "100m"})], [_res({"cpu": "500m"}), _res({"cpu": "300m", "memory": "1Ki"})],
     {"cpu": 500, "memory": 1024}),
    ([_res({"cpu": "1", "memory": "1Gi"})], [_res({"cpu": "500m", "memory": "2Gi"})], {"cpu": 1000, "memory": 2**31}),
    ([_res({"cpu": "1", "nvidia.com/gpu": "2"})], None, {"cpu": 1000, "memory": 0, "nvidia.com/gpu": 2}),
])
def test_pod_requests(containers, init, want):
    from api.pod import pod_requests
    obj = _pod_with(containers, init)
    assert pod_requests(obj) == want
    assert pod_requests(obj.spec) == want


@pytest.mark.parametrize("containers, init, want", [
    ([{}], None, "BestEffort"),
    ([{}, {}], None, "BestEffort"),
    ([_res({"nvidia.com/gpu": "1"})], None, "BestEffort"),   # only cpu and memory count
    ([_res(limits={"cpu": "1", "memory": "1Gi"})], None, "Guaranteed"),
    ([_res({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})], None, "Guaranteed"),
    ([_res({"cpu": "1000m", "memory": "1Gi"}, {"cpu": "1", "memory": "1024Mi"})], None, "Guaranteed"),
    ([_res({"cpu": "500m", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})], None, "Burstable"),
    ([_res(limits={"cpu": "1"})], None, "Burstable"),                      # memory limit missing
    ([_res(limits={"cpu": "1", "memory": "1Gi"}), {}], None, "Burstable"),  # one container without limits
    ([_res({"cpu": "100m"})], None, "Burstable"),
    ([_res(limits={"cpu": "1", "memory": "1Gi"})], [_res({"cpu": "1"})], "Burstable"),
    ([_res(limits={"cpu": "1", "memory": "1Gi"})], [_res(limits={"cpu": "2", "memory": "1Gi"})], "Guaranteed"),
])
def test_qos_class(containers, init, want):
    from api.pod import qos_class
    assert qos_class(_pod_with(containers, init)) == want


@pytest.mark.parametrize("value, total, round_up, want", [
    (3, 10, True, 3),
    ("25%", 10, True, 3),
    ("25%", 10, False, 2),
    ("25%", 4, False, 1),
    ("0%", 10, True, 0),
    ("100%", 7, False, 7),
    ("33%", 3, True, 1),
    ("33%", 3, False, 0),
    ("10%", 0, True, 0),
])
def test_resolve_int_or_percent(value, total, round_up, want):
    from api.deployment import resolve_int_or_percent
    assert resolve_int_or_percent(value, total, round_up) == want


@pytest.mark.parametrize("value", ["25", "abc", "%", "1.5%", None])
def test_resolve_int_or_percent_rejects(value):
    from api.deployment import resolve_int_or_percent
    with pytest.raises(ValueError, match="invalid value for IntOrString"):
        resolve_int_or_percent(value, 10, True)


@pytest.mark.parametrize("toleration, taint, want", [
    ({"key": "gpu", "value": "yes", "effect": "NoSchedule"}, ("gpu", "yes", "NoSchedule"), True),
    ({"key": "gpu", "value": "no", "effect": "NoSchedule"}, ("gpu", "yes", "NoSchedule"), False),
    ({"key": "gpu", "operator": "Exists"}, ("gpu", "yes", "NoExecute"), True),
    ({"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}, ("gpu", "yes", "NoExecute"), False),
    ({"operator": "Exists"}, ("anything", "", "NoExecute"), True),
    ({"key": "gpu"}, ("gpu", None, "NoSchedule"), True),   # Equal with no value matches an empty value
    ({"key": "ssd", "operator": "Exists"}, ("gpu", "", "NoSchedule"), False),
])
def test_toleration_tolerates(toleration, taint, want):
    from api.affinity import Toleration
    from api.node import Taint
    key, value, effect = taint
    assert Toleration.model_validate(toleration).tolerates(Taint(key=key, value=value, effect=effect)) is want


@pytest.mark.parametrize("term, labels, node_name, want", [
    ({"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}, {"disk": "ssd"}, "n1", True),
    ({"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}, {"disk": "hdd"}, "n1", False),
    ({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["2"]}]}, {"cores": "4"}, "n1", True),
    ({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}, {}, "n2", True),
    ({"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n2"]}]}, {}, "n2", False),
    ({}, {"disk": "ssd"}, "n1", False),   # an empty term matches no node
])
def test_node_selector_term_matches(term, labels, node_name, want):
    from api.affinity import NodeSelectorTerm
    assert NodeSelectorTerm.model_validate(term).matches(labels, node_name) is want
