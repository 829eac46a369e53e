"""The one way to write: encode an entry, stamp its request id, replicate it, and read
the FSM's answer as a typed result or a typed rejection.

Every writer (the HTTP gateway, the node RPC service, the leader's services, the
scheduler's workers and plan applier) submits through a ``Submit``:

    applied = await submit(e.JobRegister(...))     # -> Applied, or raises EntryRejected
    applied.index, applied["EvalID"]

``Submitter`` is the implementation over a replicated log's ``submit(blob[, body])``
(``server.log.ReplicatedLog``, or a test's fake) and a request id source. The FSM's
answer to an applied entry is a dict: ``{"Error", "Code", "Index"}`` when it refused the
entry (nothing was changed), else the entry type's values and ``"Index"``. A log that
could not apply the entry at all raises its own errors (no leader, outcome unknown);
they pass through unchanged.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Protocol

from caravan.fsm import entries as e


class EntryRejected(Exception):
    """The FSM applied the entry and refused it: nothing was changed. ``code`` is the
    HTTP status of the refusal (400 bad request, 404 not found, 409 conflict, 500 an
    internal error), ``message`` the FSM's text, ``index`` the log index it was
    decided at."""

    def __init__(self, code: int, message: str, index: int = 0):
        super().__init__(message)
        self.code = code
        self.message = message
        self.index = index

    def __repr__(self) -> str:
        return f"EntryRejected({self.code}, {self.message!r}, index={self.index})"


class Applied(Mapping[str, Any]):
    """The FSM's answer to an entry it applied: ``index`` the log index it was applied
    at, and the entry type's values by name (``applied["EvalID"]``,
    ``applied.get("Skipped")``)."""

    __slots__ = ("_values", "index")

    def __init__(self, values: Mapping[str, Any]):
        self._values = dict(values)
        self.index: int = int(self._values.get("Index", 0))

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Applied({self._values!r})"


def outcome(answer: Mapping[str, Any]) -> Applied:
    """The typed form of the FSM's answer: ``Applied``, or ``EntryRejected`` raised."""
    if "Error" in answer:
        raise EntryRejected(int(answer.get("Code") or 500), str(answer["Error"]),
                            int(answer.get("Index") or 0))
    return Applied(answer)


class Submit(Protocol):
    """Replicate one entry and return its ``Applied`` answer, or raise
    ``EntryRejected``. ``hold``: this server may apply ``body`` itself instead of
    decoding the encoded bytes again (the caller must not change ``body`` afterwards)."""

    async def __call__(self, body: e.Request, *, hold: bool = False) -> Applied: ...


LogSubmit = Callable[..., Awaitable[Mapping[str, Any]]]


class Submitter:
    """``Submit`` over a replicated log: ``log_submit(blob)`` (or ``log_submit(blob,
    body)`` when held) returns the FSM's answer dict; ``request_id()`` makes the id the
    FSM deduplicates a retried entry by, for an entry that does not carry one yet."""

    def __init__(self, log_submit: LogSubmit, request_id: Callable[[], str]):
        self._log_submit = log_submit
        self._request_id = request_id

    async def __call__(self, body: e.Request, *, hold: bool = False) -> Applied:
        if not body.RequestID:   # else decided by the caller, with the entry's other ids
            body.RequestID = self._request_id()
        blob = e.encode(body)
        if hold:
            answer = await self._log_submit(blob, body)
        else:
            answer = await self._log_submit(blob)
        return outcome(answer)
