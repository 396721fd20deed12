"""The QEMU 7.2 reference: ``oracle build``, ``run``, ``record``, ``diff``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vmstate.cli.group import fail, load_trace_file, machine_options, main, trace_argument
from vmstate.core.errors import VmstateError


@main.group()
def oracle():
    """The QEMU 7.2 reference: build it, run traces on it, compare."""


@oracle.command("build")
@click.option("--yes", "-y", is_flag=True, help="Install the build dependencies without asking.")
def oracle_build(yes):
    """Build the QEMU 7.2 reference with the qtest accelerator from Debian's
    source package (cached; returns at once when already built).

    Building changes the system: it adds a deb-src entry for bookworm main
    if there is none, runs apt-get update and installs QEMU's build
    dependencies (ninja-build, libglib2.0-dev, libpixman-1-dev, flex, bison,
    pkg-config, zlib1g-dev, libfdt-dev, dpkg-dev, qemu-system-data,
    seabios) as root.  It asks first on a terminal; elsewhere it needs
    --yes.  About 5 minutes on 2 cores."""
    from vmstate.trace import oracle as ref

    try:
        click.echo(ref.build(yes))
    except VmstateError as err:
        fail(err, False)


def _reference_lines(text, options, keep_streams=None):
    from vmstate.trace.oracle import Reference
    from vmstate.trace.qtest import parse_trace

    return Reference(options["rtc_base"], options["rtc_clock"], keep_streams).run(parse_trace(text))


def _our_lines(text, options):
    from vmstate.machine.migration import migrate_as_the_reference_does
    from vmstate.machine.pc import PcMachine
    from vmstate.trace.qtest import Runner, iter_commands

    runner = Runner(PcMachine(**options), migrate=lambda machine, command: migrate_as_the_reference_does(machine))
    runner.session.observations = None
    return list(runner.run(iter_commands(text)))


@oracle.command("run")
@trace_argument()
@machine_options
@click.option("--keep-streams", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep each migration's stream file in this directory.")
def oracle_run(trace, rtc_base, rtc_clock, keep_streams):
    """Run TRACE on the reference and print its replies."""
    try:
        for line in _reference_lines(*load_trace_file(trace, rtc_base, rtc_clock), keep_streams):
            click.echo(line)
    except VmstateError as err:
        fail(err, False, trace)


@oracle.command("record")
@click.argument("traces", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def oracle_record(traces):
    """Write each trace's reference output beside it as NAME.qemu.

    These files are the expected outputs of the differential tests: they come
    from QEMU, never from vmstate."""
    try:
        for path in traces:
            lines = _reference_lines(*load_trace_file(path, None, None))
            path.with_suffix(".qemu").write_text("".join(f"{line}\n" for line in lines))
            click.echo(f"{path.with_suffix('.qemu')}: {len(lines)} lines")
    except VmstateError as err:
        fail(err, False, path)


IMPLEMENTATIONS = click.Choice(["qemu", "vmstate"])


@oracle.command("migrate")
@trace_argument()
@click.option("--from", "first", type=IMPLEMENTATIONS, default="qemu", show_default=True,
              help="Where the trace starts.")
@click.option("--to", "second", type=IMPLEMENTATIONS, default="vmstate", show_default=True,
              help="Where the first migrate line moves it (later ones move it back and forth).")
@machine_options
@click.option("--json", "as_json", is_flag=True, help="Print both outputs, the first difference and the streams' "
                                                       "differences as JSON.")
def oracle_migrate(trace, first, second, rtc_base, rtc_clock, as_json):
    """Run TRACE migrating between implementations through the real bytes
    (QEMU's own stream into vmstate, vmstate's into a fresh QEMU started with
    -incoming), and compare the whole output with the same trace migrated
    QEMU to QEMU.

    Both go through the same harness (a destination QEMU loads at clock 0
    and is then clock_set; its interrupt interception restarts), so nothing
    else may differ.  Exit 0 when the outputs are identical, 1 when they
    part (the first such line, and what differs between the two streams
    sent at the last migration before it), 2 on bad input or a missing
    reference."""
    import tempfile

    from vmstate.trace.oracle import Reference, first_difference
    from vmstate.trace.qtest import parse_trace

    try:
        text, options = load_trace_file(trace, rtc_base, rtc_clock)
        commands = parse_trace(text)
        with tempfile.TemporaryDirectory(prefix="vmstate-migrate-") as kept:
            kept = Path(kept)
            lines_of: list[int] = []
            hybrid = Reference(options["rtc_base"], options["rtc_clock"], kept / "hybrid").between(
                commands, first, second, lines_of)
            baseline = Reference(options["rtc_base"], options["rtc_clock"], kept / "qemu").run(commands)
            where = first_difference(hybrid, baseline)
            streams = _streams_before(kept, lines_of[where] if where is not None and where < len(lines_of)
                                      else None, options) if where is not None else None
    except VmstateError as err:
        fail(err, as_json, trace)
    if as_json:
        click.echo(json.dumps({"from": first, "to": second, "output": hybrid, "qemu": baseline,
                               "first_difference": where, "streams": streams}))
    else:
        click.echo("\n".join(hybrid))
        if where is None:
            click.echo(f"identical to QEMU 7.2 migrating to itself ({len(baseline)} lines)", err=True)
        else:
            shown = baseline[where] if where < len(baseline) else "(nothing)"
            click.echo(f"output line {where + 1} parts: {first}->{second} gives "
                       f"{hybrid[where] if where < len(hybrid) else '(nothing)'}, QEMU->QEMU {shown}", err=True)
            for section in (streams or {}).get("sections", []):
                for change in section["fields"]:
                    click.echo(f"  the streams sent differ in {section['section']}.{change['field']}: "
                               f"{change['a']} vs QEMU's {change['b']}", err=True)
    sys.exit(0 if where is None else 1)


def _streams_before(kept: Path, line: int | None, options: dict) -> dict | None:
    """What differs between the stream the hybrid run sent and the one QEMU
    sent at the last migration before ``line``."""
    from vmstate.machine.qemu_streams import compare, open_stream

    names = sorted((p.name for p in (kept / "hybrid").glob("stream-line*.bin")),
                   key=lambda n: int(n[len("stream-line"):-4]))
    before = [n for n in names if line is None or int(n[len("stream-line"):-4]) < line]
    if not before:
        return None
    mine, theirs = kept / "hybrid" / before[-1], kept / "qemu" / before[-1]
    try:
        a = open_stream(mine, **options)
        b = open_stream(theirs, **options)
    except VmstateError:
        return None
    result = compare(a, b, {}, {})
    result["sections"] = [s for s in result["sections"] if s["section"] != "timer"]
    return result


@oracle.command("diff")
@trace_argument()
@machine_options
@click.option("--json", "as_json", is_flag=True, help="Print both outputs and the first difference as JSON.")
def oracle_diff(trace, rtc_base, rtc_clock, as_json):
    """Run TRACE on vmstate and on the reference, side by side.

    Exits 0 when the outputs are identical, 1 when they part (the first such
    line is marked), 2 on bad input or a missing reference."""
    from rich.console import Console
    from rich.table import Table

    from vmstate.trace.oracle import first_difference

    try:
        loaded = load_trace_file(trace, rtc_base, rtc_clock)
        ours = _our_lines(*loaded)
        theirs = _reference_lines(*loaded)
    except VmstateError as err:
        fail(err, as_json, trace)
    first = first_difference(ours, theirs)
    if as_json:
        click.echo(json.dumps({"vmstate": ours, "qemu": theirs, "first_difference": first}))
    else:
        table = Table("#", "vmstate", "QEMU 7.2", "")
        for i in range(max(len(ours), len(theirs))):
            a = ours[i] if i < len(ours) else ""
            b = theirs[i] if i < len(theirs) else ""
            mark = "<< first difference" if i == first else ("!=" if a != b else "")
            style = "bold red" if i == first else None
            table.add_row(str(i + 1), a, b, mark, style=style)
        Console().print(table)
        click.echo("identical" if first is None else f"outputs part at output line {first + 1}")
    sys.exit(0 if first is None else 1)
