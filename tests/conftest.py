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
