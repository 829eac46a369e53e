"""A request refused before anything is written: its HTTP status and message.

Raised by the gateway's handlers and by the checks the entry builders share with the
simulation (``server.entries``); ``server.http.app`` answers it with its status.
"""
from __future__ import annotations


class ApiError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message
