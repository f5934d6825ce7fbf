"""The event catalogue: every domain event type at its current schema version, and the
upcasters that turn a stored older shape into the next version.

Pure data and pure functions, so it sits with the domain: the composition root
(``sebaya/bootstrap.py``) builds the store's :class:`~eventstore.EventRegistry` from it, and
workflows use :func:`current_event` to turn what the store-reading activity returns into
domain events.

Changing an event's shape: raise its class's ``schema_version``, add an entry to
:data:`UPCASTERS` from the old version, and keep the old model in :data:`LEGACY_MODELS` so an
old payload can still be validated before it is upcast. Readers (the store-reading activity,
the projector, the audit tools) then only ever see the current shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from domain.cohort_events import COHORT_EVENTS
from domain.events import PAIRING_EVENTS, DomainEvent

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

#: Every event type the domain writes, at its current schema version.
EVENT_TYPES: tuple[type[DomainEvent], ...] = (*PAIRING_EVENTS, *COHORT_EVENTS)

#: ``(type name, from version) -> upcaster to from version + 1``. None yet: every type is at v1.
UPCASTERS: Mapping[tuple[str, int], Upcaster] = {}

#: ``(type name, version) -> model`` for versions older than the current one.
LEGACY_MODELS: Mapping[tuple[str, int], type[BaseModel]] = {}

_BY_TYPE: dict[str, type[DomainEvent]] = {cls.event_type: cls for cls in EVENT_TYPES}


class StaleSchema(ValueError):
    """A payload older than its type's current schema reached a reader that expects the
    current one: the store-reading activity should have upcast it."""


def event_class(event_type: str) -> type[DomainEvent]:
    try:
        return _BY_TYPE[event_type]
    except KeyError:
        raise ValueError(f"unknown event type {event_type!r}") from None


def current_event(event_type: str, schema_version: int, payload: dict[str, Any]) -> DomainEvent:
    """A stored event as its domain model; it must already be at the current schema."""
    cls = event_class(event_type)
    if schema_version != cls.schema_version:
        raise StaleSchema(
            f"{event_type} v{schema_version} is not the current v{cls.schema_version}; "
            "events reach workflows upcast by the store-reading activity"
        )
    return cls.model_validate(payload)
