"""Client host volumes in the cluster file (``[[clients.host_volume]]``) and the
``-host-volume name=path[:ro]`` flag."""
from __future__ import annotations

import tomllib

import pytest

from caravan.client.volumes import HostVolumeFlagError, parse_host_volume_flag
from caravan.server.cli import host_volume_flags
from caravan.server.config import ConfigError, parse

SERVERS = '[[servers]]\nname = "s1"\nhttp = "127.0.0.1:1"\nrpc = "127.0.0.1:2"\nraft = "127.0.0.1:3"\n'


def clients(text: str):
    return parse(tomllib.loads(SERVERS + text)).clients


def test_host_volume_tables():
    (c1, c2) = clients('''
[[clients]]
name = "c1"
http = "127.0.0.1:5"
[[clients.host_volume]]
name = "data"
path = "/srv/data"
read_only = true
[[clients.host_volume]]
name = "scratch"
path = "/tmp"

[[clients]]
name = "c2"
http = "127.0.0.1:6"
host_volume = [{ name = "logs", path = "/var/log" }]
''')
    assert c1.host_volumes == {"data": {"path": "/srv/data", "read_only": True},
                               "scratch": {"path": "/tmp", "read_only": False}}
    assert c2.host_volumes == {"logs": {"path": "/var/log", "read_only": False}}


@pytest.mark.parametrize("volume, message", [
    ('{ name = "d" }', "clients[0].host_volume[0]: missing key 'path'"),
    ('{ path = "/x" }', "clients[0].host_volume[0]: missing key 'name'"),
    ('{ name = "d", path = "rel" }', "clients[0].host_volume[0].path: 'rel' is not an "
                                     "absolute path"),
    ('{ name = "d", path = "/x", read_only = "yes" }',
     "clients[0].host_volume[0].read_only: expected bool, got 'yes'"),
    ('{ name = "d", path = "/x", mode = 1 }', "clients[0].host_volume[0]: unknown key 'mode'"),
])
def test_bad_host_volumes_name_the_key(volume, message):
    with pytest.raises(ConfigError) as err:
        clients(f'[[clients]]\nname = "c1"\nhttp = "127.0.0.1:5"\nhost_volume = [{volume}]\n')
    assert message in str(err.value)
    with pytest.raises(ConfigError, match="duplicate host volume 'd'"):
        clients('[[clients]]\nname = "c1"\nhttp = "127.0.0.1:5"\nhost_volume = ['
                '{ name = "d", path = "/a" }, { name = "d", path = "/b" }]\n')


def test_host_volume_flag():
    assert parse_host_volume_flag("data=/srv/data") == ("data", {"path": "/srv/data",
                                                                 "read_only": False})
    assert parse_host_volume_flag("data=/srv/data:ro") == ("data", {"path": "/srv/data",
                                                                    "read_only": True})
    for bad in ("data", "=/x", "data=", "data=rel/path"):
        with pytest.raises(HostVolumeFlagError, match="-host-volume"):
            parse_host_volume_flag(bad)
        # the agent's flags: a config error, as before the parser moved to the client
        with pytest.raises(ConfigError, match="-host-volume"):
            host_volume_flags([bad])
