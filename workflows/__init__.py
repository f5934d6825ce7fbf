"""Temporal workflows: one per pairing, one per cohort, and the scheduled roster sync (feed).
Deterministic code only."""

from workflows.cohort import CohortWorkflow
from workflows.deferred_delivery import DeferredDeliveryWorkflow
from workflows.digest import CoordinatorDigestWorkflow
from workflows.pairing import PairingWorkflow
from workflows.roster_feed import RosterFeedWorkflow

ALL_WORKFLOWS: list[type] = [PairingWorkflow, CohortWorkflow, RosterFeedWorkflow,
                             DeferredDeliveryWorkflow, CoordinatorDigestWorkflow]
