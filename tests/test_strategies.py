"""vmstate.strategies: what it draws is a trace the checker accepts, within
the bounds each strategy promises, and a user's own operations plug in."""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import SECTIONS
from vmstate.check import checker
from vmstate.core.errors import UsageError
from vmstate.trace.qtest import parse_trace
from vmstate.strategies import (DEVICES, HOUR_NS, device_names, migrations, noise, operations, scenarios,
                                time_steps, versions)

QUICK = settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@QUICK
@given(scenarios())
def test_every_scenario_parses_and_has_a_migration(trace):
    commands = parse_trace(trace)
    assert any(c.name == "migrate" for c in commands)
    assert checker.migration_points(commands)


@QUICK
@given(scenarios())
def test_pci_configuration_only_reaches_the_pm_function_and_0xcf9_is_never_written(trace):
    for command in parse_trace(trace):
        if command.name == "outl" and command.args[0] == 0xCF8 and command.args[1] & 0x80000000:
            assert command.args[1] & 0xFFFFFF00 == 0x80000B00, command.text
        if command.name.startswith("out"):
            assert command.args[0] != 0xCF9, command.text


@QUICK
@given(time_steps())
def test_time_steps_go_from_1_ns_to_hours_or_to_the_next_deadline(step):
    (line,) = step
    match = re.fullmatch(r"clock_step(?: (\d+))?", line)
    assert match
    if match.group(1):
        assert 1 <= int(match.group(1)) <= 2 * HOUR_NS


def test_time_steps_honour_their_bounds():
    with pytest.raises(ValueError):
        time_steps(min_ns=10, max_ns=5)

    @QUICK
    @given(time_steps(min_ns=5000, max_ns=6000, to_deadline=False))
    def bounded(step):
        assert 5000 <= int(step[0].split()[1]) <= 6000

    bounded()


@QUICK
@given(versions())
def test_versions_stay_within_each_schemas_range(chosen):
    ranges = {(s.device or s.idstr): (s.description.minimum, s.description.version) for s in SECTIONS}
    for device, version in chosen.items():
        low, high = ranges[device]
        assert low <= version <= high and low < high


@QUICK
@given(migrations(source=versions(), downtime=st.integers(1, 10)))
def test_a_migrate_line_carries_what_was_drawn(chunk):
    (command,) = parse_trace(chunk[0])
    point = checker.migration_points([command])[command.line]
    assert 1 <= point.downtime <= 10


@QUICK
@given(noise(["hpet"]))
def test_hpet_noise_stays_in_the_hpet_block(chunk):
    for command in parse_trace("\n".join(chunk)):
        assert 0xFED00000 <= command.args[0] <= 0xFED003FF


def test_a_users_own_operations_take_part():
    mine = st.just(["outb 0x80 0x42"])

    @QUICK
    @given(scenarios(devices=(), operations={"post": mine}, max_chunks=4))
    def only_mine(trace):
        ops = [c for c in parse_trace(trace) if c.name not in ("migrate", "irq_intercept_in", "clock_step")]
        assert all(c.text == "outb 0x80 0x42" for c in ops)

    only_mine()


def test_device_names_accept_aliases_and_refuse_unknown_ones():
    assert device_names(["pit", "RTC", "pm", "pcspk"]) == ("i8254", "mc146818rtc", "piix4_pm")
    assert set(device_names(DEVICES)) == set(DEVICES)
    with pytest.raises(UsageError):
        device_names(["floppy"])
    with pytest.raises(ValueError):
        operations((), with_noise=False)
