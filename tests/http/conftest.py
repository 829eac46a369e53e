import httpx
import pytest


@pytest.fixture(scope="session")
def client(dev_agent):
    with httpx.Client(base_url=dev_agent.url, timeout=10) as c:
        yield c
