"""The agent process: config, CLI, HTTP gateway, raft wrapper, gRPC service."""
