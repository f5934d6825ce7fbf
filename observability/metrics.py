"""Sebaya's own metrics, recorded through the Temporal SDK runtime's metric meter.

Low-level on purpose: ``eventstore``, ``activities`` and ``projections`` may import this module
(it imports only ``temporalio.common``), and never ``sebaya``. The process that serves metrics
(the worker, see ``sebaya/metrics.py``) calls :func:`install` with its runtime's meter; until
then every function here is a no-op, so tests, CLI commands and scripts record nothing and pay
almost nothing. The meter's exporter is the SDK's Prometheus endpoint, so Sebaya's metrics and
the SDK's own (task latencies, slots, polls) come from one scrape.

Names (Prometheus adds ``_total`` to counters):

* ``sebaya_events_appended{event_type}``: events newly written to the store (idempotent
  retries of an append that already committed are not counted);
* ``sebaya_update_refusals{update, error_type}``: participant / ops updates a workflow's
  validator refused (recorded by the worker's interceptor through the workflow metric meter,
  which also labels namespace, task queue and workflow type; never counted on replay);
* ``sebaya_deliveries{status}``: rows of the ``deliveries`` table by status (a gauge read from
  Postgres, so every worker reports the same value: aggregate with ``max``, not ``sum``);
* ``sebaya_projector_lag_seconds{projection}`` / ``sebaya_projector_events_behind``: age of
  the oldest event the read models have not applied yet, and how many there are (gauges from
  Postgres).
"""

from __future__ import annotations

from temporalio.common import MetricCounter, MetricMeter

__all__ = [
    "DELIVERIES",
    "EVENTS_APPENDED",
    "PROJECTOR_EVENTS_BEHIND",
    "PROJECTOR_LAG",
    "UPDATE_REFUSALS",
    "deliveries",
    "events_appended",
    "install",
    "installed",
    "projector_lag",
    "update_refusals_counter",
]

EVENTS_APPENDED = "sebaya_events_appended"
UPDATE_REFUSALS = "sebaya_update_refusals"
DELIVERIES = "sebaya_deliveries"
PROJECTOR_LAG = "sebaya_projector_lag_seconds"
PROJECTOR_EVENTS_BEHIND = "sebaya_projector_events_behind"


class _Instruments:
    def __init__(self, meter: MetricMeter) -> None:
        self.events_appended = meter.create_counter(
            EVENTS_APPENDED, "Events newly appended to the event store", "events")
        self.deliveries = meter.create_gauge(
            DELIVERIES, "Notification deliveries recorded, by status", "deliveries")
        self.projector_lag = meter.create_gauge_float(
            PROJECTOR_LAG, "Age of the oldest event not yet applied to the read models", "s")
        self.projector_behind = meter.create_gauge(
            PROJECTOR_EVENTS_BEHIND, "Events not yet applied to the read models", "events")


_instruments: _Instruments | None = None


def install(meter: MetricMeter) -> None:
    """Record into ``meter`` from now on (the worker's runtime meter)."""
    global _instruments
    _instruments = _Instruments(meter)


def installed() -> bool:
    return _instruments is not None


def events_appended(event_type: str, count: int = 1) -> None:
    if _instruments is not None and count:
        _instruments.events_appended.add(count, {"event_type": event_type})


def deliveries(status: str, total: int) -> None:
    if _instruments is not None:
        _instruments.deliveries.set(total, {"status": status})


def projector_lag(projection: str, seconds: float, events_behind: int) -> None:
    if _instruments is not None:
        _instruments.projector_lag.set(seconds, {"projection": projection})
        _instruments.projector_behind.set(events_behind, {"projection": projection})


def update_refusals_counter(meter: MetricMeter) -> MetricCounter:
    """The refusal counter on ``meter`` (a workflow's ``workflow.metric_meter()``)."""
    return meter.create_counter(UPDATE_REFUSALS, "Updates refused by a workflow's validator",
                                "updates")
