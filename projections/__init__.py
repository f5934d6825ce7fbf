"""Read models of the event log: ``pairing_view``, ``cohort_view``, ``participant_view``,
kept by a catch-up projector with an exactly-once checkpoint. ``runner`` is the generic
follow-and-checkpoint loop, ``read_models`` the views' writers, ``projector`` puts them
together. See ``docs/projections.md``."""

from projections.projector import DEFAULT_NAME, Projector, projection_status
from projections.runner import (
    BatchInfo,
    CheckpointMoved,
    ProjectionError,
    ProjectionRunner,
    ProjectionStatus,
)

__all__ = [
    "DEFAULT_NAME",
    "BatchInfo",
    "CheckpointMoved",
    "ProjectionError",
    "ProjectionRunner",
    "ProjectionStatus",
    "Projector",
    "projection_status",
]
