"""``raft_peers``: an optional per-server override of the address dialed for a peer."""
from __future__ import annotations

import pytest

from caravan.server.config import ConfigError, parse


def servers(**peers) -> dict:
    entries = [{"name": f"s{i}", "http": f"127.0.0.1:{4000 + i}", "rpc": f"127.0.0.1:{5000 + i}",
                "raft": f"127.0.0.1:{6000 + i}"} for i in (1, 2, 3)]
    for name, table in peers.items():
        entries[int(name[1:]) - 1]["raft_peers"] = table
    return {"cluster": {"raft_secret": "x"}, "servers": entries}


def test_overrides_change_what_a_server_dials_and_map_back_to_the_peer():
    cfg = parse(servers(s3={"s1": "127.0.0.1:2001"}))
    s1, s2, s3 = cfg.servers
    assert cfg.raft_dial_addresses(s3) == ("127.0.0.1:2001", "127.0.0.1:6002")
    assert cfg.raft_dial_addresses(s1) == ("127.0.0.1:6002", "127.0.0.1:6003")
    # s3 sees its leader at the proxy address; it is still s1
    assert cfg.server_by_raft("127.0.0.1:2001", s3) is s1
    assert cfg.server_by_raft("127.0.0.1:6002", s3) is s2
    assert cfg.server_by_raft("127.0.0.1:2001", s1) is None
    assert s1.raft_peers == {}


@pytest.mark.parametrize("peers, message", [
    ({"s9": "127.0.0.1:2001"}, "servers[2].raft_peers.s9: not another server's name "
                               "(known: s1, s2)"),
    ({"s3": "127.0.0.1:2001"}, "servers[2].raft_peers.s3: not another server's name"),
    ({"s1": "nowhere"}, "servers[2].raft_peers.s1: bad address 'nowhere'"),
    ({"s1": "127.0.0.1:6002"}, "servers[2].raft_peers.s1: '127.0.0.1:6002' is a server's own "
                               "raft address"),
    ({"s1": "127.0.0.1:2001", "s2": "127.0.0.1:2001"}, "servers[2].raft_peers: two peers share"),
    ({"s1": "127.0.0.1:7001"}, "servers[2].raft_peers.s1: '127.0.0.1:7001' must sort below "
                               "this server's own raft address '127.0.0.1:6003'"),
])
def test_bad_overrides_are_refused_with_the_key_named(peers, message):
    with pytest.raises(ConfigError, match=None) as err:
        parse(servers(s3=peers))
    assert message in str(err.value)


def test_only_the_dialing_side_may_override():
    with pytest.raises(ConfigError) as err:
        parse(servers(s1={"s3": "127.0.0.1:2001"}))
    assert "servers[0].raft_peers.s3: only the server whose raft address sorts higher " \
           "dials a pair's link; set it on 's3' instead" in str(err.value)


def test_raft_peers_must_be_a_table():
    with pytest.raises(ConfigError) as err:
        parse(servers(s2="127.0.0.1:2001"))
    assert "servers[1].raft_peers: expected a table" in str(err.value)
