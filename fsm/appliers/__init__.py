"""The appliers of log entries, one function per entry type, grouped by domain.

Each takes the write transaction and the entry's decoded body, changes the state only
through the transaction, and returns the answer for the submitter; a request the state
refuses raises ``Rejected`` and changes nothing. ``caravan.fsm.apply`` maps each entry
type to its applier. Appliers that write job versions also take the number of versions
to keep (``tracked_versions``).
"""
from typing import Any

# What an applier answers the submitter (``Index``, ``Error`` and ``Code``, IDs...).
Result = dict[str, Any]
