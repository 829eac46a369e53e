"""The client agent: registers a node with the servers over gRPC (``proto/node.proto``),
watches the allocations placed on it, runs their tasks through drivers and reports every
state change back. It decides nothing about placement."""
