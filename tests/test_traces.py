"""Differential tests: every trace in fixtures/traces prints on vmstate what
QEMU 7.2 printed for it.  The expected outputs (NAME.qemu) were recorded from
the reference with `vmstate oracle record`; the oracle-marked tests re-run the
reference live, so a stale recording cannot hide a difference."""
import pytest

from differential import corpus, load, ours, recorded
from vmstate.trace.oracle import Reference, first_difference

TRACES = corpus()
IDS = [p.stem for p in TRACES]


def test_every_trace_has_a_recorded_reference_output():
    missing = [p.name for p in TRACES if not p.with_suffix(".qemu").exists()]
    assert not missing


@pytest.mark.parametrize("path", TRACES, ids=IDS)
def test_vmstate_prints_what_the_reference_printed(path):
    expected = recorded(path)
    got = ours(path)
    first = first_difference(got, expected)
    assert first is None, (
        f"{path.name}: output line {first + 1}: vmstate {got[first:first + 1]} "
        f"vs QEMU {expected[first:first + 1]}")


@pytest.mark.oracle
@pytest.mark.parametrize("path", TRACES, ids=IDS)
def test_the_reference_still_prints_the_recording(path):
    commands, options = load(path)
    live = Reference(options["rtc_base"], options["rtc_clock"]).run(commands)
    assert live == recorded(path)
