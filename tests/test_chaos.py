"""The small fault-injection run (``make chaos`` is the large one): a generated cohort in
virtual time on two embedded stacks of its own, one fault-free and one with SIGKILLed
workers (after an append, after a delivery, at random), a second worker, terminated
Postgres connections, a Postgres restart and a Temporal restart. Real processes and servers
throughout; the comparison is sebaya.chaos's own (docs/reliability.md).
"""

from __future__ import annotations

import json

import pytest

from sebaya.chaos import ChaosConfig, run_chaos

pytestmark = [pytest.mark.temporal, pytest.mark.chaos, pytest.mark.slow,
              pytest.mark.timeout(900)]


async def test_a_cohort_under_faults_ends_as_without_them() -> None:
    # Stacks in a fresh temporary folder, not pytest's tmp_path: as root, Postgres runs as
    # another account, which must traverse the folder's parents.
    config = ChaosConfig(people=24, seed=3, cohort_id="chaos-test", worker_kills=5,
                         backend_kills=3, pause=(1.0, 3.0))
    lines: list[str] = []
    summary = await run_chaos(config, say=lines.append)
    shown = json.dumps({k: v for k, v in summary.items() if k != "details"}, indent=2)
    print(shown)  # the figures of this run (pytest -s), as make chaos prints them
    assert summary["anomaly_total"] == 0, shown + "\n" + json.dumps(summary["details"])
    faults = summary["faults"]
    # The faults happened (a run that injected nothing would prove nothing).
    assert faults.get("worker_sigkill", 0) >= 3, shown
    assert faults.get("postgres_restart") == 1 and faults.get("temporal_restart") == 1, shown
    assert faults.get("pg_terminate_backend", 0) >= 1, shown
    assert not any(kind.endswith("_failed") for kind in faults), shown
    assert summary["result"]["launched"] >= 6 and summary["events"] > 100, shown
