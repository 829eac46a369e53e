"""The HTTP gateway (starlette): one module per API area, routes listed in ``app``."""
