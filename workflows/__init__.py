"""Temporal workflows: one per pairing, one per cohort. Deterministic code only."""

from workflows.cohort import CohortWorkflow
from workflows.deferred_delivery import DeferredDeliveryWorkflow
from workflows.digest import CoordinatorDigestWorkflow
from workflows.pairing import PairingWorkflow

ALL_WORKFLOWS: list[type] = [PairingWorkflow, CohortWorkflow, DeferredDeliveryWorkflow,
                             CoordinatorDigestWorkflow]
