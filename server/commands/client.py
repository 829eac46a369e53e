"""The commands' HTTP client: the agent's address, one request path, and the
server's plain-text errors turned into ``CommandError`` (shown as the message alone)."""
from __future__ import annotations

import os
from typing import Any

import httpx

DEFAULT_ADDR = "http://127.0.0.1:4646"


class CommandError(Exception):
    """A failure to show the user as one line; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1, status: int | None = None,
                 body: str = ""):
        super().__init__(message)
        self.message, self.code, self.status, self.body = message, code, status, body


def resolve_address(flag: str | None) -> str:
    addr = flag or os.environ.get("CARAVAN_ADDR") or os.environ.get("NOMAD_ADDR") or DEFAULT_ADDR
    if "://" not in addr:
        addr = "http://" + addr
    return addr.rstrip("/")


class Client:
    """A thin wrapper over ``httpx.Client``; ``transport`` lets tests answer in memory."""

    def __init__(self, address: str, transport: httpx.BaseTransport | None = None,
                 timeout: float = 30.0):
        self.address = address
        self.http = httpx.Client(base_url=address, transport=transport,
                                 timeout=httpx.Timeout(timeout, read=None))

    def request(self, method: str, path: str, *, params: dict | None = None,
                json: Any = None, content: bytes | None = None) -> httpx.Response:
        try:
            response = self.http.request(method, path, params=params, json=json, content=content)
        except httpx.TransportError as exc:
            raise CommandError(f"Error querying {self.address}{path}: {exc}") from None
        if response.status_code >= 400:
            message = response.text.strip() or response.reason_phrase
            raise CommandError(f"Unexpected response code: {response.status_code} ({message})",
                               status=response.status_code, body=message)
        return response

    def get(self, path: str, **params) -> Any:
        return self.request("GET", path, params=params or None).json()

    def put(self, path: str, body: Any = None, **params) -> Any:
        return self.request("PUT", path, json=body, params=params or None).json()

    def delete(self, path: str, **params) -> Any:
        return self.request("DELETE", path, params=params or None).json()

    def stream(self, path: str, params: dict):
        """An open streaming response (``with client.stream(...) as r``)."""
        return _Stream(self, path, params)


class _Stream:
    def __init__(self, client: Client, path: str, params: dict):
        self.client, self.path, self.params = client, path, params
        self._cm = None

    def __enter__(self) -> httpx.Response:
        self._cm = self.client.http.stream("GET", self.path, params=self.params)
        try:
            response = self._cm.__enter__()
        except httpx.TransportError as exc:
            raise CommandError(f"Error querying {self.client.address}{self.path}: {exc}") from None
        if response.status_code >= 400:
            response.read()
            message = response.text.strip() or response.reason_phrase
            self._cm.__exit__(None, None, None)
            raise CommandError(f"Unexpected response code: {response.status_code} ({message})",
                               status=response.status_code, body=message)
        return response

    def __exit__(self, *exc) -> None:
        self._cm.__exit__(*exc)


def quote_id(job_id: str) -> str:
    """A job ID as a path segment: percent-encoded, so IDs with ``/`` or ``?`` work."""
    from urllib.parse import quote
    return quote(job_id, safe="")


def find_by_prefix(client: Client, collection: str, item: str, ident: str, what: str) -> dict:
    """The object whose ID is ``ident`` or the one that starts with it."""
    if len(ident) == 36:
        return client.get(f"{item}/{ident}")
    matches = client.get(collection, prefix=ident)
    if len(matches) == 1:
        return client.get(f"{item}/{matches[0]['ID']}")
    if not matches:
        raise CommandError(f'No {what} with prefix "{ident}" found')
    raise CommandError(f"Prefix matched multiple {what}s: "
                       + ", ".join(m["ID"] for m in matches))
