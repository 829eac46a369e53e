"""The servers' gRPC port: the status service now; node registration and allocation
updates for client agents join it with the scheduler."""
