"""protos/targets.py: the gRPC target of several servers, and addresses refused by name."""

import pytest

from protos.targets import channel_target, parse_address, split_servers


def test_one_server_stays_as_given():
    assert channel_target(["127.0.0.1:6443"]) == "127.0.0.1:6443"
    assert channel_target(["[::1]:6443"]) == "[::1]:6443"


def test_several_servers_make_one_ipv4_target_in_order_without_duplicates():
    assert channel_target(["127.0.0.1:1", "http://127.0.0.2:2", "127.0.0.1:1"]) == "ipv4:127.0.0.1:1,127.0.0.2:2"
    assert channel_target(["localhost:5", "127.0.0.3:6"]) == "ipv4:127.0.0.1:5,127.0.0.3:6"
    assert channel_target(["[::1]:1", "[::2]:2"]) == "ipv6:[::1]:1,[::2]:2"


@pytest.mark.parametrize("bad", ["foo", "foo:", ":80", "host:0", "host:70000", "http://host"])
def test_bad_addresses_are_named(bad):
    with pytest.raises(ValueError, match=f"{bad!r}: expected host:port"):
        parse_address(bad)


def test_split_servers():
    assert split_servers(" a:1, b:2 ,") == ["a:1", "b:2"]
