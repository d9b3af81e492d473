"""SharedInformers: one informer per kind, however a controller spells the kind."""

from controlplane.controllers.manager import SharedInformers


def test_kind_spellings_share_one_informer():
    informers = SharedInformers(client=None)
    assert informers.get("Node") is informers.get("nodes") is informers.get("no")
    assert informers.get("Pod") is not informers.get("Pod", namespace="kube-system")
