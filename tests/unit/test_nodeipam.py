"""Pod CIDR allocation: lowest free subnet, released by deletion, exhaustion is an error."""

import pytest

from controlplane.controllers.nodeipam import CIDRExhausted, allocate


@pytest.mark.parametrize("used, expected", [
    (set(), "10.244.0.0/24"),
    ({"10.244.0.0/24"}, "10.244.1.0/24"),
    ({"10.244.0.0/24", "10.244.2.0/24"}, "10.244.1.0/24"),   # a deleted node's slice is reused
    ({"", "10.244.0.0/24"}, "10.244.1.0/24"),
])
def test_lowest_free_subnet(used, expected):
    assert allocate("10.244.0.0/16", 24, used) == expected


def test_local_cluster_range():
    assert allocate("198.19.0.0/16", 24, set()) == "198.19.0.0/24"


def test_exhausted():
    with pytest.raises(CIDRExhausted, match="no free /24 left in cluster CIDR 10.0.0.0/23"):
        allocate("10.0.0.0/23", 24, {"10.0.0.0/24", "10.0.1.0/24"})
