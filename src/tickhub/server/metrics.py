"""Prometheus metrics at ``GET /metrics``, read from the components' own counters at scrape time.

Nothing is counted twice on the hot path: connection, subscription and message figures are the
hub's and the ingest's own counters, turned into metric families when Prometheus asks. The one
measurement made per message is the publish-to-send latency, observed once per fanned-out message
(not per client).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "tickhub_publish_to_send_seconds",
            "Time from a message's publication by the producer to its fan-out by the hub",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StateCollector(snapshot))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        s = self._snapshot()
        conns = GaugeMetricFamily(
            "tickhub_connections", "Open WebSocket connections", labels=["endpoint"]
        )
        for endpoint, n in s["connections"].items():
            conns.add_metric([endpoint], n)
        yield conns
        subs = GaugeMetricFamily(
            "tickhub_subscriptions", "Subscriptions (client x topic)", labels=["endpoint"]
        )
        for endpoint, n in s["subscriptions"].items():
            subs.add_metric([endpoint], n)
        yield subs
        yield GaugeMetricFamily(
            "tickhub_topics", "Topics with local subscribers", value=s["topics"]
        )
        for name, doc, key in (
            ("tickhub_messages_received", "Client messages received", "messages_in"),
            ("tickhub_messages_sent", "Data messages fanned out to clients", "messages_out"),
            ("tickhub_messages_published", "Messages published by the producer", "published"),
            (
                "tickhub_messages_conflated",
                "Messages replaced by a newer one for slow clients",
                "conflated",
            ),
            ("tickhub_messages_dropped", "Messages never delivered to a client", "dropped"),
            ("tickhub_ticks", "Ticks received from the feed", "ticks"),
            ("tickhub_tick_errors", "Ticks that failed processing", "tick_errors"),
            ("tickhub_feed_reconnects", "Feed reconnects", "reconnects"),
        ):
            yield CounterMetricFamily(name, doc, value=s[key])
        errors = CounterMetricFamily("tickhub_errors", "Error replies by code", labels=["code"])
        for code, n in sorted(s["errors"].items()):
            errors.add_metric([code], n)
        yield errors
        closes = CounterMetricFamily(
            "tickhub_closes", "Connections closed by code", labels=["code"]
        )
        for code, n in sorted(s["closes"].items()):
            closes.add_metric([str(code)], n)
        yield closes
        http = CounterMetricFamily(
            "tickhub_http_responses",
            "HTTP answers by status (400, 408, 431: bad requests)",
            labels=["status"],
        )
        for status, n in sorted(s["http_responses"].items()):
            http.add_metric([str(status)], n)
        yield http
        yield GaugeMetricFamily(
            "tickhub_sockets",
            "Open TCP connections (HTTP, WebSocket and closing ones)",
            value=s["sockets"],
        )
        yield CounterMetricFamily(
            "tickhub_sockets_aborted",
            "Sockets cut off at a deadline (closing handshake or drain not done in time)",
            value=s["sockets_aborted"],
        )
        yield CounterMetricFamily(
            "tickhub_sockets_refused",
            "Sockets refused at accept: their address held too many that were not WebSockets",
            value=s["sockets_refused"],
        )
        yield GaugeMetricFamily(
            "tickhub_held_bytes",
            "Bytes held for paused clients (counted against OUTBOX_BYTES)",
            value=s["held_bytes"],
        )
        feed = GaugeMetricFamily(
            "tickhub_feed_state", "1 for the feed's current state", labels=["feed", "state"]
        )
        feed.add_metric([s["feed_name"], s["feed_state"]], 1)
        yield feed
        yield GaugeMetricFamily(
            "tickhub_feed_last_tick_age_seconds",
            "Seconds since the last tick (-1 before the first)",
            value=s["last_tick_age"] if s["last_tick_age"] is not None else -1,
        )
