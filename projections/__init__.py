"""Read models of the event log: ``pairing_view``, ``cohort_view``, ``participant_view``,
kept by a catch-up projector with an exactly-once checkpoint. See ``docs/projections.md``."""

from projections.projector import (
    DEFAULT_NAME,
    BatchInfo,
    CheckpointMoved,
    ProjectionError,
    ProjectionStatus,
    Projector,
    projection_status,
)

__all__ = [
    "DEFAULT_NAME",
    "BatchInfo",
    "CheckpointMoved",
    "ProjectionError",
    "ProjectionStatus",
    "Projector",
    "projection_status",
]
