"""Restoring hostile bytes: only typed errors naming an offset, in bounded
time and memory, with the destination untouched.

The inputs are arbitrary bytes and mutations of valid streams saved from
busy machines (the scenarios up to their first ``migrate``, and QEMU 7.2's
own device sections).  Every restore goes through :func:`probe.probe`,
which turns each broken rule into a ``violation``; the harness tests at the
end make sure each rule can actually be caught.
"""
import random
import struct

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from vmstate.fuzz.hostile import campaign, mutations, probe
from vmstate.fuzz.hostile import seeds as pool
from vmstate.machine import migration
from vmstate.wire import stream
from vmstate.cli import main
from schemas.timer import MAX_VIRTUAL_NS
from vmstate.core.errors import (InvalidField, MalformedStream, StreamError, TrailingData, TruncatedStream,
                            UnknownSection)
from vmstate.machine.pc import PcMachine

SEEDS = pool.seeds()
BY_NAME = {s.name: s for s in SEEDS}
BUSY = BY_NAME["all-four-devices-busy"]
QEMU = BY_NAME["qemu-7.2-pc-hpet-armed"]
HEADER = BUSY.data[:26]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=True)

seeds = st.sampled_from(SEEDS)


def destination(seed: pool.Seed = BUSY):
    """A busy machine, another than the stream's where the stream carries
    its own time, so that an unchanged destination means something."""
    _, index = pool.destination_of(SEEDS, SEEDS.index(seed))
    return SEEDS[index].machine.clone()


def restore(data: bytes, seed: pool.Seed = BUSY) -> probe.Outcome:
    out = probe.probe(data, destination(seed), clock=seed.clock)
    assert out.violation is None, f"{out.violation}: {out.detail}"
    return out


def test_every_seed_is_a_valid_stream():
    """The mutations start from streams that restore, or nothing they
    provoke says anything about the mutation."""
    assert len(SEEDS) >= 20
    for seed in SEEDS:
        out = restore(seed.data, seed)
        assert out.error is None, (seed.name, out.error)
        assert seed.layout.sections and seed.layout.eof is not None


@FAST
@given(st.binary(max_size=400))
def test_arbitrary_bytes_are_refused_with_a_typed_error(data):
    out = restore(data)
    assert isinstance(out.error, StreamError) and out.error.offset is not None


@FAST
@given(st.binary(max_size=400))
def test_arbitrary_bytes_after_a_valid_header_are_refused(data):
    out = restore(HEADER + data)
    assert out.error is not None or data[:1] == b"\x00"


@FAST
@given(seeds, st.data())
def test_every_truncation_is_refused_at_or_before_the_cut(seed, draw):
    cut = draw.draw(st.integers(0, len(seed.data) - 1))
    assume(cut != seed.layout.eof + 1)      # QEMU's suppress-vmdesc: a stream may end after EOF
    out = restore(seed.data[:cut], seed)
    assert out.error is not None and out.error.offset <= cut


@FAST
@given(seeds, st.data())
def test_a_flipped_bit_is_refused_or_restored(seed, draw):
    at = draw.draw(st.integers(0, seed.layout.binary_end - 1))
    bit = draw.draw(st.integers(0, 7))
    data = bytearray(seed.data)
    data[at] ^= 1 << bit
    restore(bytes(data), seed)


def _length_sites():
    return [(s.name, site) for s in (BUSY, QEMU) for site in s.layout.lengths]


@pytest.mark.parametrize("name, site", _length_sites(), ids=lambda v: getattr(v, "path", v))
def test_a_lying_length_or_count_is_refused_within_the_allocation_bound(name, site):
    seed = BY_NAME[name]
    true = pool.read_value(site, seed.data)
    for value in sorted({v & ((1 << 8 * site.size) - 1) for v in mutations.lies(true, site.size, random.Random(9))}
                        - {true}):
        out = restore(pool.write_value(site, seed.data, value), seed)
        assert out.error is not None, (site.path, value)
        assert out.peak < probe.ALLOCATION_BOUND


@pytest.mark.parametrize("value", [0, 2, 33, 0xFF])
def test_num_timers_outside_3_to_32_is_refused_before_any_timer_is_read(value):
    site = next(s for s in BUSY.layout.lengths if s.path == "hpet.num_timers")
    out = restore(pool.write_value(site, BUSY.data, value))
    assert isinstance(out.error, InvalidField)
    assert (out.error.offset, out.error.path) == (site.offset, "hpet.num_timers")


def test_a_json_description_length_beyond_the_limit_is_refused_without_reading_it():
    site = next(s for s in BUSY.layout.lengths if s.path.startswith("JSON"))
    out = restore(pool.write_value(site, BUSY.data, 0xFFFFFFFF))
    assert isinstance(out.error, MalformedStream) and out.error.offset == site.offset
    assert out.peak < 1 << 20


def _ranged_fields():
    """Fields whose rule is a range or a set: a value outside it is known."""
    return [(s.name, site) for s in (BUSY, QEMU) for site in s.layout.values
            if isinstance(site.entry.valid, (range, frozenset))
            and site.path not in {x.path for x in s.layout.lengths}]


def _outside(site) -> list[int]:
    valid = site.entry.valid
    lo, hi = pool.bounds(site)
    candidates = [lo, hi] + ([valid.start - 1, valid.stop] if isinstance(valid, range)
                             else [max(valid) + 1, min(valid) - 1])
    return sorted({v for v in candidates if lo <= v <= hi and v not in valid})


@pytest.mark.parametrize("name, site", _ranged_fields(), ids=lambda v: getattr(v, "path", v))
def test_a_field_out_of_its_range_is_refused_naming_its_offset_and_path(name, site):
    seed = BY_NAME[name]
    values = _outside(site)
    assert values, site.path
    for value in values:
        out = restore(pool.write_value(site, seed.data, value), seed)
        assert isinstance(out.error, InvalidField), (site.path, value, out.error)
        assert (out.error.offset, out.error.path) == (site.offset, site.path)


@FAST
@given(seeds, st.data())
def test_any_value_in_any_field_is_refused_or_restored(seed, draw):
    site = draw.draw(st.sampled_from(seed.layout.values))
    value = draw.draw(st.integers(*pool.bounds(site)))
    restore(pool.write_value(site, seed.data, value), seed)


@pytest.mark.parametrize("seed", [BUSY, QEMU], ids=lambda s: s.name)
def test_a_section_repeated_right_after_itself_is_refused_at_the_repeat(seed):
    for span in seed.layout.sections:
        start, end = span.start, span.end
        out = restore(seed.data[:end] + seed.data[start:end] + seed.data[end:], seed)
        assert isinstance(out.error, MalformedStream), span.idstr
        assert (out.error.offset, out.error.path) == (end, span.idstr)


@pytest.mark.parametrize("seed", [BUSY, QEMU], ids=lambda s: s.name)
def test_sections_in_any_order_restore_the_same_machine(seed):
    """QEMU fixes no order of sections; the ``timer`` section gives the
    others their time wherever it stands (the rules judge every section at
    the stream's time, and the clock is loaded first)."""
    spans = [(s.start, s.end) for s in seed.layout.sections]
    first, last = spans[0][0], spans[-1][1]
    reordered = seed.data[:first] + b"".join(seed.data[a:b] for a, b in reversed(spans)) + seed.data[last:]
    reordered = reordered[:seed.layout.eof + 1]     # the JSON description lists them in the old order
    expected = migration.restore(seed.data[:seed.layout.eof + 1], destination(seed), clock=seed.clock).get_state()
    dest = destination(seed)
    assert probe.probe(reordered, dest, clock=seed.clock).error is None
    assert dest.get_state() == expected


@FAST
@given(seeds, st.binary(min_size=1, max_size=64))
def test_trailing_garbage_after_the_description_is_refused_where_it_starts(seed, junk):
    assume(seed.layout.description is not None)
    out = restore(seed.data + junk, seed)
    assert isinstance(out.error, TrailingData) and out.error.offset == len(seed.data)


@FAST
@given(seeds, st.integers(0, 2**32 - 1), st.sampled_from(sorted(mutations.MUTATIONS)))
def test_every_mutation_is_refused_or_restored(seed, number, name):
    rng = random.Random(number)
    data = mutations.MUTATIONS[name](rng, seed, seed.data) if name != "splice" else \
        mutations.splice(rng, seed, seed.data, rng.choice(SEEDS))
    restore(data, seed)


# -- regressions the campaign found -----------------------------------------------------
def test_a_section_for_a_device_the_machine_lacks_names_the_offset_of_its_name():
    """The lookup raised UnknownSection without an offset: the stream
    layer now gives it the offset of the section's name."""
    data = BUSY.data[:32] + b"tymer" + BUSY.data[37:]
    out = restore(data)
    assert isinstance(out.error, UnknownSection) and (out.error.offset, out.error.path) == (32, "tymer")
    instance = BUSY.data[:37] + struct.pack(">I", 1) + BUSY.data[41:]
    out = restore(instance)
    assert isinstance(out.error, UnknownSection) and out.error.offset == 32


def test_a_virtual_time_too_late_for_any_deadline_is_refused_at_the_timer_field():
    """Found by the campaign: a ``timer`` section at INT64_MAX ns restored,
    the RTC re-armed its periodic timer a period later, past INT64_MAX, and
    the machine could not be saved again."""
    seed = BY_NAME["rtc-periodic-coalesced"]
    site = next(s for s in seed.layout.values if s.path == "timer.cpu_clock_offset")
    for value in (MAX_VIRTUAL_NS, 2**63 - 1):
        out = restore(pool.write_value(site, seed.data, value), seed)
        assert isinstance(out.error, InvalidField)
        assert (out.error.offset, out.error.path) == (site.offset, "timer.cpu_clock_offset")
    latest = pool.write_value(site, seed.data, MAX_VIRTUAL_NS - 1)
    dest = destination(seed)
    assert probe.probe(latest, dest).error is None
    assert dest.clock.now == MAX_VIRTUAL_NS - 1


def test_streams_with_ever_new_sets_of_sections_do_not_make_the_loader_hold_more_memory():
    """Found by the campaign (650 MB resident after 100,000 inputs): each
    stream's expected JSON description (about 130 KB with its text) was
    cached per combination of sections it brought, and reordered or
    dropped sections bring new combinations without end."""
    import gc
    import itertools
    import tracemalloc

    spans = [(s.start, s.end) for s in BUSY.layout.sections if s.idstr != "timer"]
    first, last = spans[0][0], spans[-1][1]
    orders = itertools.permutations(spans)
    dest = destination()

    def restore_orders(n):
        for order in itertools.islice(orders, n):
            data = BUSY.data[:first] + b"".join(BUSY.data[a:b] for a, b in order) + BUSY.data[last:]
            migration.restore(data, dest)

    restore_orders(80)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        restore_orders(80)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 1 << 20


# -- the harness can fail ----------------------------------------------------------------
def test_probe_reports_an_untyped_exception(monkeypatch):
    monkeypatch.setattr(migration, "restore", lambda data, machine, **_: {}["missing"])
    assert probe.probe(BUSY.data, PcMachine()).violation == "untyped"


def test_probe_reports_a_refusal_that_changed_the_destination(monkeypatch):
    def restore_badly(data, machine, **_):
        machine.clock.load(machine.clock.now + 1)
        raise TruncatedStream("cut", 3, "(header)")

    monkeypatch.setattr(migration, "restore", restore_badly)
    assert probe.probe(BUSY.data, PcMachine()).violation == "destination changed"


def test_probe_reports_a_refusal_without_an_offset(monkeypatch):
    def refuse(data, machine, **_):
        raise MalformedStream("somewhere")

    monkeypatch.setattr(migration, "restore", refuse)
    assert probe.probe(BUSY.data, PcMachine()).violation == "no offset"


def test_probe_reports_a_refusal_that_names_no_part_of_the_stream(monkeypatch):
    def refuse(data, machine, **_):
        raise TruncatedStream("cut", 3)

    monkeypatch.setattr(migration, "restore", refuse)
    assert probe.probe(BUSY.data, PcMachine()).violation == "no place"


def test_probe_reports_a_field_named_at_another_fields_offset(monkeypatch):
    """A mutation in place leaves every field where it was: an error naming
    one must point at its bytes (hpet.isr sits 8 bytes after hpet.config)."""
    config = BUSY.layout.values[[v.path for v in BUSY.layout.values].index("hpet.config")]

    def refuse(data, machine, **_):
        raise InvalidField("blamed", config.offset, "hpet.isr")

    monkeypatch.setattr(migration, "restore", refuse)
    mutated = pool.write_value(config, BUSY.data, 3)
    out = probe.probe(mutated, PcMachine(), offsets=BUSY.offsets_in(mutated))
    assert out.violation == "wrong offset" and f"{config.offset + 8:#x}" in out.detail
    assert BUSY.offsets_in(mutated[:-1]) is None


def test_probe_reports_an_allocation_over_the_bound(monkeypatch):
    def hoard(data, machine, **_):
        kept = bytearray(probe.ALLOCATION_BOUND + 1)
        raise TruncatedStream(f"cut after {len(kept)}", 3, "(header)")

    monkeypatch.setattr(migration, "restore", hoard)
    assert probe.probe(BUSY.data, PcMachine()).violation == "allocation"


def test_probe_reports_a_hang(monkeypatch):
    def spin(data, machine, **_):
        while True:
            pass

    monkeypatch.setattr(migration, "restore", spin)
    out = probe.probe(BUSY.data, PcMachine(), seconds=0.2)
    assert out.violation == "hang" and out.seconds < 1


def test_probe_reports_a_restored_machine_that_cannot_save(monkeypatch):
    def corrupt(data, machine, **_):
        machine.pit.channels = []
        return machine

    monkeypatch.setattr(migration, "restore", corrupt)
    assert probe.probe(BUSY.data, PcMachine()).violation == "unsaveable"


def test_a_campaign_reports_memory_that_restores_keep_holding(monkeypatch):
    hoard = []

    def restore_and_keep(data, machine=None, **options):
        hoard.append(bytes(100_000))
        return machine if machine is not None else PcMachine(**options)

    monkeypatch.setattr(migration, "restore", restore_and_keep)
    monkeypatch.setattr(campaign, "WARM_UP", 20)
    monkeypatch.setattr(campaign, "RETAINED_BOUND", 4 << 20)
    report = campaign.campaign(100, seed=1)
    assert [f.violation for f in report.findings] == ["retained memory"]
    assert len(hoard) > 80                                  # streams and snapshots; a trace need not restore
    assert report.retained >= (len(hoard) - 20) * 100_000 * 0.9


# -- the campaign and its command ----------------------------------------------------------
def test_a_small_campaign_is_clean_and_repeatable():
    a = campaign.campaign(150, seed=3)
    b = campaign.campaign(150, seed=3)
    assert a.clean, a.to_json()["violations"]
    assert (a.restored, a.refused, a.mutations) == (b.restored, b.refused, b.mutations)
    assert a.restored and sum(a.refused.values()) == 150 - a.restored


def test_the_command_exits_1_on_a_violation_and_writes_the_input(monkeypatch, tmp_path):
    monkeypatch.setattr(migration, "restore", lambda data, machine, **_: [][0])
    result = CliRunner().invoke(main, ["hostile", "--inputs", "5", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 1
    assert len(list((tmp_path / "violations").glob("*-untyped.bin"))) == 5


def test_the_command_exits_0_when_clean_and_2_on_bad_input(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["hostile", "--inputs", "40", "--seed", "7", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert '"clean": true' in result.output and (tmp_path / "index.json").exists()
    assert runner.invoke(main, ["hostile", "--inputs", "0"]).exit_code == 2
    assert runner.invoke(main, ["hostile", "--seed", "x"]).exit_code == 2


def test_the_descriptions_length_is_bounded_by_the_stream_layer():
    assert stream.MAX_DESCRIPTION < probe.ALLOCATION_BOUND


# -- the end of time -----------------------------------------------------------------------------
def _busy_reads(m: PcMachine) -> None:
    """What a guest reads of every device, so that any time a model derives
    from a stored one is computed."""
    for port in (0x40, 0x41, 0x42, 0x61):
        m.io_read(port, 1)
    for reg in range(14):
        m.io_write(0x70, 1, reg)
        m.io_read(0x71, 1)
    m.io_read(0x608, 4)
    for offset in (0x0, 0x10, 0x20, 0xF0, 0x100, 0x108, 0x120, 0x140):
        m.mem_read(0xFED00000 + offset, 4)


def test_a_time_near_the_end_of_time_is_refused_or_lives_on():
    """Every 64-bit field of a busy stream set to each of the ends of time:
    refused with a typed error, or a machine that reads, steps (by a
    nanosecond, a second, a thousand seconds, to its next deadline) and saves
    after each, within an event budget."""
    from vmstate.core.clock import EventBudget
    from vmstate.core.errors import VmstateError

    for leaf in [v for v in BUSY.layout.values if v.size == 8]:
        lo, hi = pool.bounds(leaf)
        for value in (v for v in mutations.END_OF_TIME if lo <= v <= hi):
            try:
                m = migration.restore(pool.write_value(leaf, BUSY.data, value), **BUSY.options)
            except StreamError:
                continue
            m.clock.budget = EventBudget(100_000)
            migration.save(m)
            for step in (1, 10**9, 10**12, None):
                try:
                    m.clock_step(step)
                except VmstateError:                # past the end of time, or over the budget
                    break
                _busy_reads(m)
                migration.save(m)
