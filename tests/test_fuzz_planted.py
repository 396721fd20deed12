"""The fuzzing campaign against planted bugs (tests/planted.py): with the
strategies of vmstate.strategies and a seeded campaign on the planted
device's operations, each of the 18 bugs is found within the stated budget
of examples and shrunk to a trace of at most eight operations, naming the
planted section.

Budgets are hypothesis's max_examples for a campaign seeded with SEED; the
seeded run is deterministic, and depends on the seed and the strategies
alone (not on constants hypothesis would mine from the code loaded:
vmstate.fuzz.reproducible), so a budget is a measured fact, not a hope.
Each budget is at least 1.5 times the examples (set-aside ones included)
the campaign needed to find the bug when the budget was set, measured with
that very budget: hypothesis sizes what it draws to max_examples, so the
same seed draws other scenarios under another budget.  A campaign drives
the planted device's operations only, except where another device must
raise the state the planted one loses (``DEVICES``).
"""
from __future__ import annotations

import pytest

from planted import PLANTED
from vmstate.check import checker
from vmstate.fuzz import campaign as fuzz
from vmstate.strategies import device_names

SEED = 0
MAX_OPERATIONS = 8

#: bug -> (examples the seeded campaign may use, examples it needed to find
#: the bug with that budget when it was set).  hypothesis sizes its
#: generation to max_examples, so the second number holds for that budget
#: only: measure again at the new budget when changing one.
BUDGETS = {
    "pit-count-latched-dropped": (150, 24),
    "pit-read-state-dropped": (150, 25),
    "pit-write-latch-dropped": (200, 117),
    "pit-write-state-dropped": (150, 25),
    "pit-status-latched-dropped": (400, 58),
    "hpet-offset-subsection-never-needed": (250, 29),
    "hpet-offset-not-rebased": (150, 37),
    "hpet-period-dropped": (400, 166),
    "hpet-isr-dropped": (250, 29),
    "hpet-timer-expire-dropped": (400, 112),
    "hpet-rtc-irq-level-never-needed": (200, 118),
    "rtc-update-timer-not-rearmed": (150, 79),
    "rtc-set-pending-time-lost": (250, 32),
    "rtc-cmos-index-dropped": (150, 7),
    "rtc-register-c-cleared": (150, 81),
    "pm-overflow-time-dropped": (150, 20),
    "pcihost-config-reg-dropped": (150, 20),
    "pcspk-data-on-dropped": (700, 442),
}

#: The devices a bug's campaign drives, where the planted device's own
#: operations cannot show the loss: the HPET holds back the RTC's level
#: under legacy replacement, so the RTC must raise it.
DEVICES = {
    "hpet-rtc-irq-level-never-needed": ("hpet", "mc146818rtc"),
}


def _config(name: str, tmp_path, examples: int, shrink: bool = True) -> fuzz.Config:
    bug = PLANTED[name]
    devices = DEVICES.get(name, device_names([bug.device]))
    return fuzz.Config(devices=devices, examples=examples, seed=SEED, out=tmp_path, database=":memory:",
                       sections=bug.sections, tag=name, shrink=shrink)


def test_every_planted_bug_has_a_budget_with_room_to_spare():
    assert set(BUDGETS) == set(PLANTED) and len(PLANTED) == 18
    assert set(DEVICES) <= set(PLANTED)
    for name, (budget, needed) in BUDGETS.items():
        assert needed * 3 <= budget * 2, name


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_the_campaign_finds_and_shrinks_the_planted_bug(name, tmp_path):
    bug = PLANTED[name]
    budget, _ = BUDGETS[name]
    report = fuzz.campaign(_config(name, tmp_path, budget), progress=False)
    assert report.failures, f"{name} not found in {budget} examples"
    failure = report.failures[0]
    assert fuzz.guest_operations(failure.trace) <= MAX_OPERATIONS, failure.trace
    # the counterexample fails on the broken schemas and is invisible on the real ones
    assert checker.check(failure.trace, sections=bug.sections).status == failure.status == "diverges"
    assert fuzz.check_scenario(failure.trace).status in ("equivalent", "known")
    # the suspects point at the broken section (the exact field when the loss is a field's)
    section = bug.field.split(".")[0]
    assert any(f.split(".")[0] == section for f in failure.fields), (bug.field, failure.fields)


def test_the_real_schemas_survive_the_same_campaigns(tmp_path):
    """The control: the same seeded campaign on the real schemas finds nothing."""
    config = fuzz.Config(devices=("i8254", "mc146818rtc"), examples=150, seed=SEED, out=tmp_path,
                         database=":memory:")
    assert fuzz.campaign(config, progress=False).failures == []
