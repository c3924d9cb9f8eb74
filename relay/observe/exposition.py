"""``/$metrics``: the counters in Prometheus' text format, built at scrape time.

Azure Monitor's Hybrid Connections metrics under one rule: Azure's name in
snake_case, prefixed ``soaprelay_``, counters ending in ``_total``, the label
``entity_name`` (Azure's ``EntityName`` dimension)::

    ListenerConnections-Success        soaprelay_listener_connections_success_total
    ListenerConnections-ClientError    soaprelay_listener_connections_client_error_total
    ListenerConnections-ServerError    soaprelay_listener_connections_server_error_total
    ListenerConnections-TotalRequests  soaprelay_listener_connections_total_requests_total
    SenderConnections-*                soaprelay_sender_connections_*_total (same four)
    ActiveConnections                  soaprelay_active_connections (gauge)
    ActiveListeners                    soaprelay_active_listeners (gauge)
    ListenerDisconnects                soaprelay_listener_disconnects_total
    SenderDisconnects                  soaprelay_sender_disconnects_total
    BytesTransferred                   soaprelay_bytes_transferred_total

Beyond Azure: ``soaprelay_relay_time_seconds`` and ``soaprelay_listener_time_seconds``
(histograms), ``soaprelay_soap_calls_total{operation}``,
``soaprelay_soap_faults_total{fault_code}``, ``soaprelay_event_deliveries_total``,
``soaprelay_relayed_calls_total{transfer="inline"|"rendezvous"}``,
``soaprelay_diagnostic_events_total{operation_name}`` and
``soaprelay_webhook_deliveries_total{outcome}``.  On a cluster node (or with
``[observe] node`` set, which wins) every sample also has a ``node`` label: each
node counts its own calls, and Prometheus scrapes every node.

Each relay has its own ``CollectorRegistry`` (no process-wide state: tests run
many relays in one process), holding one collector that reads the
:class:`relay.observe.stats.EntityStats` when scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from relay.observe.names import Outcome

if TYPE_CHECKING:
    from relay.observe.observer import Observer

__all__ = ["CONTENT_TYPE", "metrics_registry", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_PREFIX = "soaprelay_"
_OUTCOMES = (
    ("success", "Success", (Outcome.SUCCESS,)),
    ("client_error", "ClientError", (Outcome.CLIENT_ERROR,)),
    ("server_error", "ServerError", (Outcome.SERVER_ERROR,)),
    ("total_requests", "TotalRequests", tuple(Outcome)),
)


class _StatsCollector(Collector):
    def __init__(self, observer: Observer, active: Callable[[], dict[str, int]]) -> None:
        self.observer, self.active = observer, active
        self.extra_names: tuple[str, ...] = ()
        self.extra_values: tuple[str, ...] = ()

    def _labels(self, *names: str) -> list[str]:
        return [*names, *self.extra_names]

    def _values(self, *values: str) -> list[str]:
        return [*values, *self.extra_values]

    def collect(self) -> Iterator[Metric]:
        node = self.observer.node  # read per scrape: a cluster names it once joined
        self.extra_names, self.extra_values = ((("node",), (node,)) if node else ((), ()))
        stats = list(self.observer.stats.values())
        yield from self._connections(stats)
        yield from self._azure_rest(stats)
        yield from self._extras(stats)

    def _counter(self, name: str, doc: str, *labels: str) -> CounterMetricFamily:
        return CounterMetricFamily(_PREFIX + name, doc, labels=self._labels(*labels))

    def _connections(self, stats: list) -> Iterator[Metric]:  # type: ignore[type-arg]
        for side, attr in (("listener", "listener_outcomes"), ("sender", "sender_outcomes")):
            for suffix, azure, outcomes in _OUTCOMES:
                family = self._counter(
                    f"{side}_connections_{suffix}",
                    f"Azure {side.title()}Connections-{azure}", "entity_name")
                for s in stats:
                    counts = getattr(s, attr)
                    family.add_metric(self._values(s.name), sum(counts[o] for o in outcomes))
                yield family

    def _azure_rest(self, stats: list) -> Iterator[Metric]:  # type: ignore[type-arg]
        listeners = self.active()
        active = GaugeMetricFamily(_PREFIX + "active_connections", "Azure ActiveConnections:"
                                   " listeners, WebSocket senders and HTTP calls open now",
                                   labels=self._labels("entity_name"))
        online = GaugeMetricFamily(_PREFIX + "active_listeners", "Azure ActiveListeners",
                                   labels=self._labels("entity_name"))
        for s in stats:
            count = listeners.get(s.name, 0)
            online.add_metric(self._values(s.name), count)
            active.add_metric(self._values(s.name), count + s.ws_senders + s.in_flight)
        yield active
        yield online
        for name, doc, attr in (
            ("listener_disconnects", "Azure ListenerDisconnects", "listener_disconnects"),
            ("sender_disconnects", "Azure SenderDisconnects (WebSocket senders)",
             "sender_disconnects"),
            ("bytes_transferred", "Azure BytesTransferred (HTTP bodies, both ways)", "bytes"),
            ("event_deliveries", "Event messages delivered to listeners", "event_deliveries"),
        ):
            family = self._counter(name, doc, "entity_name")
            for s in stats:
                family.add_metric(self._values(s.name), getattr(s, attr))
            yield family

    def _extras(self, stats: list) -> Iterator[Metric]:  # type: ignore[type-arg]
        for name, doc, attr in (
            ("relay_time_seconds", "Time the relay adds to a call", "relay_time"),
            ("listener_time_seconds", "Time from forwarding a call to the listener's answer",
             "listener_time"),
        ):
            family = HistogramMetricFamily(_PREFIX + name, doc, labels=self._labels("entity_name"))
            for s in stats:
                histogram = getattr(s, attr)
                family.add_metric(self._values(s.name), histogram.cumulative(), histogram.total)
            yield family
        transfer = self._counter("relayed_calls", "Calls answered by a listener, by transfer",
                                 "entity_name", "transfer")
        operations = self._counter("soap_calls", "SOAP calls by operation", "entity_name",
                                   "operation")
        faults = self._counter("soap_faults", "SOAP faults answered, by fault code",
                               "entity_name", "fault_code")
        for s in stats:
            transfer.add_metric(self._values(s.name, "inline"), s.inline)
            transfer.add_metric(self._values(s.name, "rendezvous"), s.rendezvous)
            for operation, count in list(s.operations.items()):
                operations.add_metric(self._values(s.name, operation), count)
            for code, count in list(s.faults.items()):
                faults.add_metric(self._values(s.name, code), count)
        yield transfer
        yield operations
        yield faults
        yield from self._events()

    def _events(self) -> Iterator[Metric]:
        events = self._counter("diagnostic_events", "Diagnostic events emitted", "operation_name")
        for name, count in list(self.observer.events.counts.items()):
            events.add_metric(self._values(name), count)
        yield events
        hooks = self.observer.webhooks
        deliveries = self._counter("webhook_deliveries", "Webhook deliveries by outcome", "outcome")
        for outcome, count in (hooks.outcomes.items() if hooks is not None else ()):
            deliveries.add_metric(self._values(outcome), count)
        yield deliveries


def metrics_registry(observer: Observer, active: Callable[[], dict[str, int]]) -> CollectorRegistry:
    """A private registry for one relay (``active()``: listeners online per entity)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StatsCollector(observer, active))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
