"""``tests.common`` for python-nomad's integration tests: where the agent under test
listens, from the environment variables python-nomad's CI sets (NOMAD_IP, NOMAD_PORT,
NOMAD_TOKEN). The namespace the mocked namespace tests use is a constant: exporting
NOMAD_NAMESPACE would also change the namespace of every ``nomad.Nomad()`` client."""
import os

IP = os.environ.get("NOMAD_IP", "127.0.0.1")
NOMAD_PORT = os.environ.get("NOMAD_PORT", "4646")
NOMAD_TOKEN = os.environ.get("NOMAD_TOKEN") or None
NOMAD_NAMESPACE = "admin"
