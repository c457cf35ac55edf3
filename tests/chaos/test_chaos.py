"""The fault-injection scenarios at their fast scale: each fails when its guarantee breaks.

The guarantees live beside each scenario (``tests/chaos/scenarios.py``, ``Report.require``),
so ``make chaos`` judges its full-scale runs by the same rules (tests/chaos/__main__.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.scenarios import FAST, SCENARIOS, Scenario, Standalone

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
SEED = 20261130


GUARDED = [s for s in SCENARIOS if not getattr(s, "measures_only", False)]


@pytest.mark.parametrize("scenario", GUARDED, ids=[s.name for s in GUARDED])
def test_scenario(scenario: Scenario | Standalone, tmp_path: Path) -> None:
    report = scenario(tmp_path, SEED, FAST)
    print(report.line())
    assert report.broken == [], report.line()
