"""The garbage collector's settings in ``cluster.toml``."""
from __future__ import annotations

import pytest

from caravan.server.config import ConfigError, parse

SERVERS = [{"name": "a", "http": "127.0.0.1:1", "rpc": "127.0.0.1:2", "raft": "127.0.0.1:3"}]


def test_defaults_are_nomads():
    c = parse({"servers": SERVERS}).cluster
    assert [c.duration_ns(k) // 10**9 for k in ("gc_interval", "eval_gc_threshold",
                                               "job_gc_threshold", "deployment_gc_threshold",
                                               "node_gc_threshold")] == \
        [300, 3600, 4 * 3600, 3600, 24 * 3600]


def test_go_durations_are_accepted():
    c = parse({"cluster": {"gc_interval": "1m30s", "job_gc_threshold": "500ms"},
               "servers": SERVERS}).cluster
    assert (c.duration_ns("gc_interval"), c.duration_ns("job_gc_threshold")) == \
        (90 * 10**9, 500 * 10**6)


@pytest.mark.parametrize("key,value,message", [
    ("gc_interval", "soon", "cluster.toml: cluster.gc_interval: bad duration 'soon': "
                            'time: invalid duration "soon"'),
    ("eval_gc_threshold", "10", "cluster.toml: cluster.eval_gc_threshold: bad duration '10': "
                                'time: missing unit in duration "10"'),
    ("node_gc_threshold", "0s", "cluster.toml: cluster.node_gc_threshold: must be positive, "
                                "got '0s'"),
    ("job_gc_threshold", "-1h", "cluster.toml: cluster.job_gc_threshold: must be positive, "
                                "got '-1h'"),
    ("deployment_gc_threshold", 3600, "cluster.toml: cluster.deployment_gc_threshold: "
                                      "expected str, got 3600"),
])
def test_bad_values_are_refused_naming_key_and_value(key, value, message):
    with pytest.raises(ConfigError) as exc:
        parse({"cluster": {key: value}, "servers": SERVERS})
    assert str(exc.value) == message


def test_scheduler_worker_counts():
    """Not the collector's, but the same table: the workers on the leader and, opt-in,
    on each follower (``follower_scheduler_workers``)."""
    c = parse({"servers": SERVERS}).cluster
    assert (c.scheduler_workers, c.follower_scheduler_workers) == (32, 0)
    c = parse({"cluster": {"follower_scheduler_workers": 3}, "servers": SERVERS}).cluster
    assert c.follower_scheduler_workers == 3
    for key, value, message in [
            ("follower_scheduler_workers", -1, "must be at least 0, got -1"),
            ("scheduler_workers", 0, "must be at least 1, got 0")]:
        with pytest.raises(ConfigError) as exc:
            parse({"cluster": {key: value}, "servers": SERVERS})
        assert str(exc.value) == f"cluster.toml: cluster.{key}: {message}"
