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


def test_allocation_stays_fast_with_thousands_of_nodes():
    used = {f"10.{i // 256}.{i % 256}.0/24" for i in range(5000)}
    # 5,000 subnets taken in a /8: the next one is found without comparing every pair.
    assert allocate("10.0.0.0/8", 24, used) == "10.19.136.0/24"


def test_odd_sized_subnets_set_by_hand_are_respected():
    assert allocate("10.244.0.0/16", 24, {"10.244.0.0/23"}) == "10.244.2.0/24"
