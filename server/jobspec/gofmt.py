"""Values rendered the way Go prints them (``%q``, runes, ``%v`` of a []string) and Go's
``strconv.ParseUint`` errors, so validation messages match Nomad's."""
from __future__ import annotations

import json
import re
from typing import Any

from caravan.server.jobspec.validate_fields import text_of


def parse_uint_error(text: str, base: int, bits: int) -> str | None:
    """The error Go's strconv.ParseUint would give, or None."""
    digits = "01234567" if base == 8 else "0123456789"
    if not text or any(ch not in digits for ch in text):
        return f"strconv.ParseUint: parsing {go_quote(text)}: invalid syntax"
    if int(text, base) >= 1 << bits:
        return f"strconv.ParseUint: parsing {go_quote(text)}: value out of range"
    return None


def is_go_int(text: str) -> bool:
    return re.fullmatch(r"[+-]?\d+", text) is not None


def go_quote(text: str | None, ascii_only: bool = False) -> str:
    """Go's %q (or %+q with ``ascii_only``) for a string."""
    return json.dumps(text or "", ensure_ascii=ascii_only)


def go_rune(ch: str) -> str:
    return "'" + json.dumps(ch)[1:-1].replace("'", "\\'") + "'"


def go_list(items: list[Any]) -> str:
    """Go's %v for a []string: [a b c]."""
    return "[" + " ".join(text_of(i) for i in items) + "]"
