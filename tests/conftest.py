import pytest

from tests.procs import dev_server


@pytest.fixture(scope="session")
def dev_agent(tmp_path_factory):
    """One real `caravan agent -dev` process shared by the HTTP tests."""
    server = dev_server(tmp_path_factory.mktemp("dev-agent")).start()
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


def pytest_addoption(parser):
    group = parser.getgroup("sim", "deterministic simulation (tests/sim)")
    group.addoption("--sim-seed", type=int, default=None, metavar="N",
                    help="run the simulation for exactly this seed (replays a failure)")
    group.addoption("--sim-seeds", type=int, default=None, metavar="N",
                    help="how many seeds (0..N-1) the simulation runs (default 200)")
