"""vmstate.strategies: what it draws is a trace the checker accepts, within
the bounds each strategy promises, and a user's own operations plug in."""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from schemas import SECTIONS
from vmstate.core.errors import UsageError
from vmstate.strategies import (DEVICES, HOUR_NS, device_names, downtimes, hpet_operations, migrations, noise,
                                operations, pit_operations, pm_operations, rtc_operations, scenarios, time_steps,
                                versions)
from vmstate.trace.points import migration_points, point_of
from vmstate.trace.qtest import parse_trace

QUICK = settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@QUICK
@given(scenarios())
def test_every_scenario_parses_and_has_a_migration(trace):
    commands = parse_trace(trace)
    assert any(c.name == "migrate" for c in commands)
    assert migration_points(commands)


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
    with pytest.raises(InvalidArgument):
        time_steps(min_ns=10, max_ns=5)

    @QUICK
    @given(time_steps(min_ns=5000, max_ns=6000, to_deadline=False))
    def bounded(step):
        assert 5000 <= int(step[0].split()[1]) <= 6000

    bounded()


@QUICK
@given(versions())
def test_versions_stay_within_each_schemas_range(chosen):
    ranges = {s.device: (s.description.minimum, s.description.version) for s in SECTIONS}
    for device, version in chosen.items():
        low, high = ranges[device]
        assert low <= version <= high and low < high


@QUICK
@given(st.data())
def test_a_migrate_line_carries_what_was_drawn(data):
    source, destination = data.draw(versions()), data.draw(versions())
    pause = data.draw(downtimes(10))
    (line,) = data.draw(migrations(st.just(source), st.just(destination), st.just(pause)))
    (command,) = parse_trace(line)
    point = point_of(command)
    assert (point.versions, point.highest, point.downtime) == (source, destination, pause)


@QUICK
@given(noise(["hpet"]))
def test_hpet_noise_stays_in_the_hpet_block(chunk):
    for command in parse_trace("\n".join(chunk)):
        assert 0xFED00000 <= command.args[0] <= 0xFED003FF


def test_a_users_own_operations_take_part():
    """Every operation drawn is the user's, and some scenario does draw one."""
    mine = st.just(["outb 0x80 0x42"])
    strategy = scenarios(devices=(), operations={"post": mine}, max_chunks=4)

    def ops(trace):
        return [c.text for c in parse_trace(trace) if c.name not in ("migrate", "irq_intercept_in", "clock_step")]

    @QUICK
    @given(strategy)
    def only_mine(trace):
        assert set(ops(trace)) <= {"outb 0x80 0x42"}

    only_mine()
    assert ops(find(strategy, lambda trace: bool(ops(trace)))) == ["outb 0x80 0x42"]


def test_device_names_accept_aliases_and_refuse_unknown_ones():
    assert device_names(["pit", "RTC", "pm", "pcspk"]) == ("i8254", "mc146818rtc", "piix4_pm")
    assert set(device_names(DEVICES)) == set(DEVICES)
    with pytest.raises(UsageError):
        device_names(["floppy"])
    with pytest.raises(UsageError):
        device_names(["timer"])     # no operations drive the clock's state
    with pytest.raises(InvalidArgument):
        operations((), with_noise=False)


@pytest.mark.parametrize("build", [
    lambda: downtimes(0), lambda: pit_operations(channels=[3]), lambda: pit_operations(counts=[0x10000]),
    lambda: hpet_operations(timers=[30]), lambda: rtc_operations(rates=[16]), lambda: pm_operations(bases=[0x601]),
    lambda: scenarios(min_chunks=3, max_chunks=2), lambda: noise(["floppy"]),
], ids=["downtimes", "pit-channels", "pit-counts", "hpet-timers", "rtc-rates", "pm-bases", "chunks", "noise"])
def test_bad_arguments_are_refused_where_the_strategy_is_built(build):
    with pytest.raises(InvalidArgument):
        build()


def _words(chunks):
    return [c.split() for chunk in chunks for c in chunk]


def test_strategy_parameters_are_honoured():
    """The channels, counts, timers, rates and bases a caller favours are
    the ones drawn."""
    @QUICK
    @given(st.lists(pit_operations(channels=[2]), max_size=5), st.lists(hpet_operations(timers=[1]), max_size=5),
           st.lists(rtc_operations(rates=[6]), max_size=5), st.lists(pm_operations(bases=[0x1000]), max_size=5))
    def honoured(pit, hpet, rtc, pm):
        for words in _words(pit):
            if words[1] in ("0x40", "0x41", "0x42"):
                assert words[1] == "0x42"
            if words[:2] == ["outb", "0x43"] and int(words[2], 16) >> 6 != 3:
                assert int(words[2], 16) >> 6 == 2
        for words in _words(hpet):
            if words[0] in ("writel", "readl", "writeq") and 0xFED00100 <= int(words[1], 16) < 0xFED00400:
                assert (int(words[1], 16) - 0xFED00100) // 0x20 == 1
        for chunk in rtc:
            for index, value in zip(chunk, chunk[1:]):
                if index == "outb 0x70 0xa" and value.startswith("outb 0x71") and int(value.split()[2], 16) & 0x70 == 0x20:
                    assert int(value.split()[2], 16) & 0xF == 6
        for words in _words(pm):
            if words[0] in ("inw", "inl", "inb", "outw") and 0x600 <= int(words[1], 16) < 0x10000 \
                    and int(words[1], 16) not in (0xCF8, 0xCFC) and not 0xAFE0 <= int(words[1], 16) < 0xAFE4:
                assert 0x1000 <= int(words[1], 16) < 0x1010

    honoured()
