"""The links between one ingest and many gateways through the bus: requests, demand, liveness."""
