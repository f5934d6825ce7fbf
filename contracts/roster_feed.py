"""The scheduled roster sync's contract: workflow and activity names, input and result.

The activity that reads the export lives with the entry points (``sebaya/roster_feed.py``):
it needs the people.csv reader and the operations function ``sebaya cohort sync`` uses, so
the workflow asks for it by name.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

ROSTER_FEED_WORKFLOW = "RosterFeedWorkflow"
SYNC_FROM_SOURCE = "sync_roster_from_source"


def roster_feed_schedule_id(cohort_id: str) -> str:
    return f"roster-sync-{cohort_id}"


class RosterFeedInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    cohort_id: str = Field(min_length=1)
    # A file path the worker can read, or an http(s) URL it can fetch.
    source: str = Field(min_length=1)
    synced_by: str = Field(min_length=1)


class RosterFeedResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    cohort_id: str
    source: str
    source_digest: str
    summary: str
    applied: bool
