"""Which event types exist, at which schema version, and how old payloads are upgraded.

The store knows no domain: the wiring layer registers the domain's event models here and hands
the registry to :class:`~eventstore.store.EventStore`, which then refuses any event the domain
would not recognise (see ``sebaya/bootstrap.py``, which builds it from ``domain/catalog.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, ValidationError

from eventstore.errors import InvalidEventPayload, UnknownEventType, UpcastError
from eventstore.models import EventMetadata, NewEvent, RecordedEvent

M = TypeVar("M", bound=type[BaseModel])

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class EventRegistry:
    """Event models by ``(type name, schema version)`` plus upcasters between versions.

    Writers must use a type's latest registered version; readers get any stored version
    upgraded to the latest through the chain of upcasters ``v -> v+1``.
    """

    def __init__(self) -> None:
        self._models: dict[str, dict[int, type[BaseModel]]] = {}
        self._names: dict[type[BaseModel], tuple[str, int]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        # name -> (latest version, its model): looked up for every appended event.
        self._latest: dict[str, tuple[int, type[BaseModel]]] = {}

    def register(self, model_cls: M, *, name: str | None = None,
                 version: int | None = None) -> M:
        """Register a payload model; ``name``/``version`` default to the class's
        ``event_type`` and ``schema_version`` class variables. Returns the class, so it also
        works as a decorator."""
        if not (isinstance(model_cls, type) and issubclass(model_cls, BaseModel)):
            raise TypeError(f"{model_cls!r} is not a pydantic model class")
        name = name if name is not None else getattr(model_cls, "event_type", None)
        version = version if version is not None else getattr(model_cls, "schema_version", 1)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{model_cls.__name__} has no event_type; pass name=")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise TypeError(f"{model_cls.__name__}: schema version must be an int >= 1")
        # An event store keeps payloads forever: a silently dropped unknown field is data lost
        # for good, so every registered model must refuse them.
        if model_cls.model_config.get("extra") != "forbid":
            raise TypeError(f"{model_cls.__name__} must set model_config extra='forbid'")
        versions = self._models.setdefault(name, {})
        existing = versions.get(version)
        if existing is not None and existing is not model_cls:
            raise ValueError(
                f"{name} v{version} is already registered as {existing.__name__}"
            )
        versions[version] = model_cls
        self._names[model_cls] = (name, version)
        latest = max(versions)
        self._latest[name] = (latest, versions[latest])
        return model_cls

    def register_upcaster(self, name: str, from_version: int, fn: Upcaster) -> None:
        """Register ``fn`` to turn a ``name`` payload of ``from_version`` into one of
        ``from_version + 1``. It receives a private copy and may mutate it."""
        key = (name, from_version)
        if key in self._upcasters:
            raise ValueError(f"an upcaster for {name} v{from_version} is already registered")
        self._upcasters[key] = fn

    def names(self) -> list[str]:
        """Registered type names, sorted."""
        return sorted(self._models)

    def latest_version(self, name: str) -> int:
        """The version new events of ``name`` must be written at."""
        return max(self._versions(name))

    def validate(self, new_event: NewEvent) -> NewEvent:
        """Check ``new_event`` against its type's latest model and return it with the payload
        normalised to the model's JSON form (defaults filled in, enums as values), which is
        what gets stored and hashed."""
        return new_event.model_copy(update={"payload": self.normalised_payload(new_event)})

    def normalised_payload(self, new_event: NewEvent) -> dict[str, Any]:
        """The payload :meth:`validate` would put in the returned event (same errors)."""
        name = new_event.type
        known = self._latest.get(name)
        if known is None:
            self._versions(name)  # raises UnknownEventType, listing the registered types
        latest, model_cls = known  # type: ignore[misc]
        if new_event.schema_version != latest:
            raise InvalidEventPayload(name, [(
                "schema_version",
                f"{name} is written at schema version {latest}, "
                f"not {new_event.schema_version} (older versions are read-only)",
            )])
        model = self._validated(name, model_cls, new_event.payload)
        # model_dump(mode="json") without the wrapper's keyword handling (same result).
        return model.__pydantic_serializer__.to_python(model, mode="json")

    def decode(self, recorded: RecordedEvent) -> BaseModel:
        """The stored event as an instance of its type's latest model, upcasting old versions
        first."""
        name = recorded.type
        latest = self.latest_version(name)
        version = recorded.schema_version
        if version > latest:
            raise UnknownEventType(name, f"{name} v{version} is newer than this code knows "
                                   f"(latest registered v{latest}); deploy newer code to read it")
        payload = copy.deepcopy(recorded.payload)
        while version < latest:
            upcaster = self._upcasters.get((name, version))
            if upcaster is None:
                raise UpcastError(f"no upcaster registered from {name} v{version} to "
                                  f"v{version + 1}")
            try:
                payload = upcaster(payload)
            except Exception as exc:
                raise UpcastError(f"upcasting {name} v{version} (event {recorded.event_id}) "
                                  f"failed: {exc}") from exc
            version += 1
        return self._validated(name, self._models[name][latest], payload)

    def to_new_event(self, event: BaseModel, *, event_id: UUID,
                     metadata: EventMetadata) -> NewEvent:
        """Wrap a registered domain event instance in a :class:`NewEvent`."""
        try:
            name, version = self._names[type(event)]
        except KeyError:
            raise UnknownEventType(type(event).__name__,
                                   f"{type(event).__name__} is not a registered event model"
                                   ) from None
        return NewEvent(event_id=event_id, type=name, schema_version=version,
                        payload=event.model_dump(mode="json"), metadata=metadata)

    def _versions(self, name: str) -> dict[int, type[BaseModel]]:
        versions = self._models.get(name)
        if not versions:
            known = ", ".join(self.names()) or "none"
            raise UnknownEventType(name, f"unknown event type {name!r} (registered: {known})")
        return versions

    @staticmethod
    def _validated(name: str, model_cls: type[BaseModel], payload: Any) -> BaseModel:
        try:
            return model_cls.model_validate(payload)
        except ValidationError as exc:
            raise InvalidEventPayload(
                name, [(_field_path(err["loc"]), err["msg"]) for err in exc.errors()]
            ) from None


def _field_path(loc: tuple[int | str, ...]) -> str:
    """``("goals", 0, "title")`` -> ``goals[0].title``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path
