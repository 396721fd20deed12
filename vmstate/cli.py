"""The ``vmstate`` command line.

Each command imports what it needs when it runs, not at start-up: a
``vmstate run`` of a short trace should not wait for construct, deepdiff,
rich or hypothesis, which other commands use."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vmstate.core.errors import UsageError, VmstateError

#: ``vmstate check``'s exit status for a divergence that is exactly QEMU 7.2's own.
KNOWN_DIVERGENCE_EXIT = 3


def machine_options(func):
    """The options that shape a machine, as QEMU's ``-rtc base=...,clock=...``.
    Given on the command line they override the trace's ``#!`` pragma."""
    func = click.option("--rtc-clock", type=click.Choice(["vm", "host"]), default=None,
                        help="Clock the RTC follows (QEMU's -rtc clock=); default vm.")(func)
    func = click.option("--rtc-base", default=None, metavar="ISO-8601",
                        help="RTC time at virtual time 0 (QEMU's -rtc base=); "
                             "default 2000-01-01T00:00:00 UTC.")(func)
    return func


def _load_trace(trace, rtc_base, rtc_clock):
    """The trace's commands and the machine options it runs with."""
    from vmstate.trace.load import load_trace

    return load_trace(trace.read(), rtc_base, rtc_clock)


def _events_json(runner) -> str:
    from vmstate.present import event_json

    return json.dumps([event_json(e) for e in runner.session.observations.events])


def _fail(err: VmstateError, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(err.to_json()))
    else:
        click.echo(f"vmstate: {err}", err=True)
    sys.exit(err.exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Serialize, migrate and check the live state of emulated x86 timer
    devices (i8254 PIT, HPET, MC146818 RTC, ACPI PM timer) on QEMU 7.2's pc
    machine."""


@main.command()
@click.argument("trace", type=click.File("r"))
@machine_options
@click.option("--json", "as_json", is_flag=True, help="Print the observation record as JSON.")
def run(trace, rtc_base, rtc_clock, as_json):
    """Run a qtest TRACE (or - for standard input) and print QEMU 7.2's replies.

    The output can be compared line for line with what QEMU prints to a
    qtest client for the same commands."""
    from vmstate.machine.pc import PcMachine
    from vmstate.trace.qtest import Runner

    try:
        commands, options = _load_trace(trace, rtc_base, rtc_clock)
        runner = Runner(PcMachine(**options))
        if as_json:
            for _ in runner.run(commands):
                pass
            click.echo(_events_json(runner))
        else:
            for line in runner.run(commands):
                click.echo(line)
    except VmstateError as err:
        _fail(err, as_json)


def _versions_option(func):
    return click.option("--versions", default="", metavar="DEVICE=N,...",
                        help="Section versions to write, e.g. i8254=2,hpet=1 (default: current).")(func)


@main.command()
@click.argument("trace", type=click.File("r"))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Snapshot file to write (atomically).")
@_versions_option
@machine_options
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot's header as JSON.")
def save(trace, output, versions, rtc_base, rtc_clock, as_json):
    """Run TRACE on a fresh machine, then save its device state to a snapshot.

    The snapshot holds a QEMU 7.2 migration stream and, beside it, the
    machine options, versions and clocks it needs; a checksum covers it all."""
    from vmstate.machine import migration
    from vmstate.machine.names import parse_versions
    from vmstate.machine.pc import PcMachine
    from vmstate.trace.qtest import Runner
    from vmstate.wire import snapshot

    try:
        commands, options = _load_trace(trace, rtc_base, rtc_clock)
        chosen = parse_versions(versions)
        runner = Runner(PcMachine(**options))
        for _ in runner.run(commands):
            pass
        stream = migration.save(runner.machine, chosen)
        header = snapshot.header_for(runner.machine, chosen)
        snapshot.write_atomically(output, snapshot.encode(stream, header))
    except VmstateError as err:
        _fail(err, as_json)
    except OSError as err:
        _fail(UsageError(f"{output}: {err.strerror}"), as_json)
    if as_json:
        click.echo(json.dumps({**header, "file": str(output), "stream_length": len(stream)}))
    else:
        click.echo(f"{output}: {len(stream)}-byte stream at virtual time {header['virtual_ns']} ns")


def _read_snapshot(path):
    from vmstate.wire import snapshot

    try:
        return snapshot.decode(Path(path).read_bytes())
    except OSError as err:
        raise UsageError(f"{path}: {err.strerror}") from None


@main.command()
@click.argument("snapshot_file", metavar="SNAPSHOT", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("trace", type=click.File("r"), required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the observation record as JSON.")
def restore(snapshot_file, trace, as_json):
    """Restore SNAPSHOT into a fresh machine and run TRACE from there.

    The replies are what the saved machine would have answered had it gone
    on; without TRACE, only the restored virtual time is printed."""
    from vmstate.machine import migration
    from vmstate.trace.qtest import Runner, parse_trace

    try:
        snap = _read_snapshot(snapshot_file)
        machine = migration.restore(snap.stream, **snap.machine_options)
        commands = parse_trace(trace.read()) if trace is not None else []
        runner = Runner(machine)
        lines = list(runner.run(commands))
    except VmstateError as err:
        _fail(err, as_json)
    if as_json:
        click.echo(_events_json(runner))
        return
    if trace is None:
        click.echo(f"restored {snapshot_file} at virtual time {machine.clock.now} ns")
    for line in lines:
        click.echo(line)


@main.command()
@click.argument("snapshot_file", metavar="SNAPSHOT", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the decoded sections as JSON.")
def inspect(snapshot_file, as_json):
    """Decode and validate SNAPSHOT and show every section's fields."""
    from rich.console import Console
    from rich.table import Table

    from vmstate.machine import migration
    from vmstate.machine.pc import PcMachine
    from vmstate.present import flatten, jsonable, shown
    from vmstate.wire.table import to_container

    try:
        snap = _read_snapshot(snapshot_file)
        loaded = migration.decode(snap.stream, PcMachine(**snap.machine_options))
    except VmstateError as err:
        _fail(err, as_json)
    decoded = [{"section": s.idstr, "version": s.version,
                "fields": to_container(s.description, s.version, s.state)} for s in loaded.sections]
    if as_json:
        click.echo(json.dumps({"header": snap.header, "sections": decoded}, default=jsonable))
        return
    console = Console()
    console.print(f"[bold]{snapshot_file}[/]: machine {snap.header['machine']}, "
                  f"virtual time {snap.header['virtual_ns']} ns")
    for item in decoded:
        table = Table(title=f"{item['section']} (version {item['version']})", show_header=True)
        table.add_column("field")
        table.add_column("value")
        for name, value in flatten(item["fields"]):
            table.add_row(name, shown(value))
        console.print(table)


@main.command()
@click.argument("scenario", type=click.File("r"))
@click.option("--from", "source", default="", metavar="DEVICE:N,...",
              help="Versions the source writes at each migration (default: current).")
@click.option("--to", "destination", default="", metavar="DEVICE:N,...",
              help="Highest versions the destination loads (default: current).")
@click.option("--downtime", default=0, type=click.IntRange(min=0), metavar="NS",
              help="Host time that passes while the machine is stopped.")
@machine_options
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@click.option("--counterexample", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="When the check fails, write a trace that replays it here.")
@click.option("--plot", "picture", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Draw both runs' interrupt edges and reads to this .svg or .png (needs vmstate[plot]).")
def check(scenario, source, destination, downtime, rtc_base, rtc_clock, as_json, counterexample, picture):
    """Migrate a running machine at each `migrate` line of SCENARIO and prove
    the guest cannot tell.

    Exit 0 when both runs observe the same; 3 when they diverge exactly
    where QEMU 7.2's own migration does (the divergence is named: CI can
    accept 0 and 3); 1 when they diverge otherwise or the destination
    refuses the stream; 2 on bad input (a scenario without a migrate line
    included)."""
    from vmstate.check import checker, report
    from vmstate.machine.names import parse_versions

    try:
        if picture is not None:
            from vmstate.check.plot import check_path
            check_path(picture)
        text = scenario.read()
        options = dict(source_versions=parse_versions(source),
                       destination_versions=parse_versions(destination),
                       downtime=downtime, rtc_base=rtc_base, rtc_clock=rtc_clock)
        verdict = checker.check(text, **options)
        if counterexample is not None and not verdict.equivalent:
            from vmstate.wire.snapshot import write_atomically
            write_atomically(counterexample, checker.counterexample(text, verdict, **options).encode())
        if picture is not None:
            from vmstate.check.plot import draw
            draw(verdict, picture)
    except VmstateError as err:
        _fail(err, as_json)
    if as_json:
        click.echo(json.dumps(report.verdict_json(verdict)))
    else:
        report.render(verdict)
    sys.exit(0 if verdict.equivalent else KNOWN_DIVERGENCE_EXIT if verdict.known else 1)


@main.command()
@click.argument("scenarios", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--device", default=None, metavar="D", help="Only this section (e.g. i8254); default: every "
              "section with more than one version.")
@click.option("--json", "as_json", is_flag=True, help="Print every cell and the known limits as JSON.")
@click.option("--markdown", is_flag=True, help="Print the matrix and the known limits as Markdown tables.")
def matrix(scenarios, device, as_json, markdown):
    """Migrate every scenario (default: the library) between every pair of
    versions of each multi-version section, forward and backward.

    Exit 0 when every cell is equivalent, refused as too new, or explained by
    a known limit of an old format; 1 when a cell is not, or a scenario's
    same-version migration is not what it expects; 2 on bad input."""
    from vmstate.check import matrix as grid
    from vmstate.present import Progress, console

    try:
        paths = list(scenarios) or grid.library()
        chosen = grid.select(device)
        with Progress("cross-version matrix", grid.checks(chosen, len(paths))) as progress:
            result = grid.build(paths, device, advance=lambda what: progress.update(advance=1, description=what))
    except VmstateError as err:
        _fail(err, as_json)
    if as_json:
        click.echo(json.dumps(grid.to_json(result)))
    elif markdown:
        click.echo(grid.to_markdown(result), nl=False)
    else:
        grid.render(result, console())
    sys.exit(1 if result.failed else 0)


@main.command()
def demo():
    """The main job on built-in defaults: a pc machine with all four timer
    devices busy mid-operation, migrated across a version boundary, its
    stream shown decoded, and the checker's verdict.  Exit 0 when the guest
    cannot tell, 1 when it can."""
    from vmstate import demo as show

    try:
        sys.exit(0 if show.run() else 1)
    except VmstateError as err:
        _fail(err, False)


@main.command()
@click.option("--inputs", default=10_000, show_default=True, type=click.IntRange(min=1), metavar="N",
              help="How many hostile inputs to restore.")
@click.option("--seed", default=0, show_default=True, type=int, metavar="S",
              help="Seed of the mutations: the same seed gives the same inputs.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="Write the regression corpus (and any violating inputs) here, e.g. fixtures/hostile.")
@click.option("--json", "as_json", is_flag=True, help="Print the campaign's report as JSON.")
def hostile(inputs, seed, out, as_json):
    """Restore mutated and arbitrary streams and check that each is refused
    with a typed error naming an offset, in bounded time and memory, with
    the destination untouched (or restored, when still valid).

    Exit 0 when no rule broke, 1 on any violation, 2 on bad input."""
    from vmstate.fuzz import hostile as campaigns

    try:
        report = campaigns.run(inputs, seed, out, as_json)
    except VmstateError as err:
        _fail(err, as_json)
    except OSError as err:
        _fail(UsageError(f"{out}: {err.strerror}"), as_json)
    sys.exit(0 if report.clean else 1)


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
        _fail(err, False)


def _reference_lines(trace, rtc_base, rtc_clock, keep_streams=None):
    from vmstate.trace.oracle import Reference

    commands, options = _load_trace(trace, rtc_base, rtc_clock)
    return Reference(options["rtc_base"], options["rtc_clock"], keep_streams).run(commands)


def _our_lines(path, rtc_base, rtc_clock):
    from vmstate.machine.pc import PcMachine
    from vmstate.trace.qtest import Runner

    from vmstate.machine.migration import migrate_as_the_reference_does

    with open(path) as trace:
        commands, options = _load_trace(trace, rtc_base, rtc_clock)
    runner = Runner(PcMachine(**options), migrate=lambda machine, command: migrate_as_the_reference_does(machine))
    return list(runner.run(commands))


@oracle.command("run")
@click.argument("trace", type=click.File("r"))
@machine_options
@click.option("--keep-streams", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep each migration's stream file in this directory.")
def oracle_run(trace, rtc_base, rtc_clock, keep_streams):
    """Run TRACE on the reference and print its replies."""
    try:
        for line in _reference_lines(trace, rtc_base, rtc_clock, keep_streams):
            click.echo(line)
    except VmstateError as err:
        _fail(err, False)


@oracle.command("record")
@click.argument("traces", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def oracle_record(traces):
    """Write each trace's reference output beside it as NAME.qemu.

    These files are the expected outputs of the differential tests: they come
    from QEMU, never from vmstate."""
    try:
        for path in traces:
            with open(path) as trace:
                lines = _reference_lines(trace, None, None)
            path.with_suffix(".qemu").write_text("".join(f"{line}\n" for line in lines))
            click.echo(f"{path.with_suffix('.qemu')}: {len(lines)} lines")
    except VmstateError as err:
        _fail(err, False)


@oracle.command("diff")
@click.argument("trace", type=click.Path(exists=True, dir_okay=False, path_type=Path))
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
        ours = _our_lines(trace, rtc_base, rtc_clock)
        with open(trace) as handle:
            theirs = _reference_lines(handle, rtc_base, rtc_clock)
    except VmstateError as err:
        _fail(err, as_json)
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


@main.command("fuzz")
@click.option("--device", "devices", multiple=True, metavar="D",
              help="Drive only this device's operations (i8254/pit, hpet, mc146818rtc/rtc, piix4_pm/pm); "
                   "repeatable; default all four.")
@click.option("--examples", type=click.IntRange(min=1), default=None,
              help="Scenarios to try, over all workers (default 200 when --time is not given).")
@click.option("--time", "time_limit", type=click.FloatRange(min=0, min_open=True), default=None, metavar="S",
              help="Fuzz for S seconds instead of a number of examples.")
@click.option("--workers", type=click.IntRange(min=1), default=1, help="Worker processes (default 1).")
@click.option("--seed", type=int, default=None, help="Seed the campaign, for a reproducible run (hypothesis then keeps nothing in the "
                   "example database: share failures between workers by running unseeded).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("vmstate-fuzz"),
              help="Directory for counterexample traces (and the default example database).")
@click.option("--database", default=None, metavar="DIR|redis://...",
              help="Hypothesis example database shared by the workers: a directory (default OUT/database) "
                   "or a redis:// URL.")
@click.option("--json", "as_json", is_flag=True, help="Print the campaign's summary as JSON.")
def fuzz_command(devices, examples, time_limit, workers, seed, out, database, as_json):
    """Fuzz migration: random scenarios (guest operations, time steps,
    migrations) checked straight against migrated, each failure shrunk and
    written to OUT as a trace that `vmstate check` replays.

    Divergences QEMU 7.2 shows itself (its RTC re-phases the periodic
    interrupt on load, jumps a clock held by the divider, ...) are counted,
    not reported.  Exit 0 when nothing was found, 1 when something was, 2 on
    bad input."""
    from vmstate.fuzz import campaign as fuzz
    from vmstate.strategies import DEVICES, device_names

    try:
        if examples is not None and time_limit is not None:
            raise UsageError("give --examples or --time, not both")
        config = fuzz.Config(devices=device_names(devices) if devices else DEVICES,
                             examples=examples if examples is not None or time_limit is not None else 200,
                             time_limit=time_limit, workers=workers, seed=seed, out=out, database=database)
        if time_limit is not None:
            config.examples = None
        result = fuzz.campaign(config, progress=True)
    except VmstateError as err:
        _fail(err, as_json)
    except OSError as err:
        _fail(UsageError(f"{out}: {err.strerror}"), as_json)
    if as_json:
        click.echo(fuzz.report_json(result))
    else:
        click.echo(f"{result.examples} scenarios in {result.seconds:.1f} s ({result.rate:.1f}/s, "
                   f"{workers} worker(s)), {result.states} distinct device states, {result.known} known QEMU "
                   f"divergences, {result.costly} set aside over budget")
        for failure in result.failures:
            click.echo(f"FOUND {failure.status} at line {failure.line}: {', '.join(failure.fields) or '-'}\n"
                       f"  replay: vmstate check {failure.path}")
        if not result.failures:
            click.echo("nothing found")
    sys.exit(1 if result.failures else 0)
