"""The audit trail: what happened to a pairing and why, what state it was in on a date,
whether anyone altered the record, self-contained bundles checkable offline, whether the
current workflow code still replays running pairings, and GDPR erasure. See
``docs/audit.md``.

Every function takes the store, pool or Temporal client to use, so the CLI
(``sebaya audit ...``) and the tests share them.
"""

from audit.bundle import BundleReport, Manifest, export_bundle, verify_bundle
from audit.determinism import DeterminismReport, ReplayVerdict, check_determinism, replay_histories
from audit.erasure import ErasureResult, erase_person
from audit.history import (
    MatchProvenance,
    PairingHistory,
    PairingNotFound,
    TimelineEntry,
    pairing_history,
)
from audit.replay import Comparison, FieldDifference, ReplayResult, replay_pairing, replayed_state
from audit.verify import Finding, VerifyResult, cohort_streams, verify

__all__ = [
    "BundleReport",
    "Comparison",
    "DeterminismReport",
    "ErasureResult",
    "FieldDifference",
    "Finding",
    "Manifest",
    "MatchProvenance",
    "PairingHistory",
    "PairingNotFound",
    "ReplayResult",
    "ReplayVerdict",
    "TimelineEntry",
    "VerifyResult",
    "check_determinism",
    "cohort_streams",
    "erase_person",
    "export_bundle",
    "pairing_history",
    "replay_histories",
    "replay_pairing",
    "replayed_state",
    "verify",
    "verify_bundle",
]
