"""UUID-shaped identifiers drawn from a given random source.

Pure: the caller supplies the ``random.Random``. The gateway uses one seeded by the OS;
the scheduler uses one seeded from the eval, so a replayed plan gets the same ids.
"""
from __future__ import annotations

import random

_VERSION_4 = (0x4 << 76) | (0x2 << 62)      # version nibble 4, RFC 4122 variant bits
_CLEAR = ~((0xF << 76) | (0x3 << 62))


def uuid4_from(rng: random.Random) -> str:
    h = "%032x" % ((rng.getrandbits(128) & _CLEAR) | _VERSION_4)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
