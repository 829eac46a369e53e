"""The drivers this client offers: ``mock`` always, ``raw_exec`` when enabled (by
default only in ``-dev`` mode, as in Nomad), ``docker`` when a docker engine answers."""
from __future__ import annotations

from caravan.client.drivers.docker import DockerDriver
from caravan.client.drivers.mock import MockDriver
from caravan.client.drivers.raw_exec import RawExecDriver
from caravan.client.fingerprint import driver_info


def available_drivers(raw_exec: bool) -> tuple[dict, dict]:
    """(name -> driver, name -> DriverInfo) of the drivers usable on this host."""
    drivers, infos = {}, {}
    for driver in (MockDriver(), RawExecDriver(enabled=raw_exec), DockerDriver()):
        attributes = driver.fingerprint()
        if attributes is None:
            continue
        drivers[driver.name] = driver
        infos[driver.name] = driver_info(attributes)
    return drivers, infos
