"""The event catalogue as the store knows it: every domain event type, by name and version.

Wiring, not domain: ``domain`` must not import the store, and the store must not know the
domain, so the two meet here. Upcasters for old schema versions are registered here too.
"""

from __future__ import annotations

from eventstore import EventRegistry


def domain_registry() -> EventRegistry:
    from domain.events import PAIRING_EVENTS

    registry = EventRegistry()
    for event_cls in PAIRING_EVENTS:
        registry.register(event_cls)
    try:
        from domain.cohort_events import COHORT_EVENTS
    except ModuleNotFoundError as exc:  # cohorts not built yet on this branch
        if exc.name != "domain.cohort_events":
            raise
    else:
        for event_cls in COHORT_EVENTS:
            registry.register(event_cls)
    return registry
