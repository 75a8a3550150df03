"""The links between one ingest and many gateways through the bus: ``messages`` (topics and
shapes), ``gateway`` (what a gateway runs) and ``ingest`` (what the ingest runs)."""
