"""Deterministic identifiers.

Event ids are derived from the stream and the version the event takes in it, so a workflow
that replays, retries an activity or restarts on another worker always proposes the same id
for the same event, and the store's idempotent append turns a retry into a no-op.
"""

from __future__ import annotations

import uuid

# Fixed namespace for Sebaya's uuid5 ids; never change it (stored ids depend on it).
SEBAYA_NAMESPACE = uuid.UUID("6f1d3c2e-6a43-5b8e-9c11-5e6261796121")


def pairing_stream(pairing_id: str) -> str:
    return f"pairing-{pairing_id}"


def cohort_stream(cohort_id: str) -> str:
    return f"cohort-{cohort_id}"


def pairing_workflow_id(pairing_id: str) -> str:
    return f"pairing-{pairing_id}"


def cohort_workflow_id(cohort_id: str) -> str:
    return f"cohort-{cohort_id}"


def event_id_for(stream_id: str, version: int) -> uuid.UUID:
    return uuid.uuid5(SEBAYA_NAMESPACE, f"{stream_id}/{version}")


def pairing_id_for(cohort_id: str, mentor_id: str, mentee_id: str, attempt: int = 1) -> str:
    """Readable and unique within a cohort: a rematch of the same person gets a new attempt."""
    return f"{cohort_id}.{mentee_id}.{mentor_id}.{attempt}"
