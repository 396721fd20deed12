"""Checking migrations: ``check``, ``matrix``, ``demo``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vmstate.cli.group import (KNOWN_DIVERGENCE_EXIT, budget_option, event_budget, fail, load_trace_file,
                               machine_options, main, trace_argument)
from vmstate.core.errors import UsageError, VmstateError


@main.command()
@trace_argument("scenario")
@click.option("--from", "source", default="", metavar="DEVICE:N,...",
              help="Versions the source writes at each migration (default: current).")
@click.option("--to", "destination", default="", metavar="DEVICE:N,...",
              help="Highest versions the destination loads (default: current).")
@click.option("--downtime", default=0, type=click.IntRange(min=0), metavar="NS",
              help="Host time that passes while the machine is stopped.")
@machine_options
@budget_option
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@click.option("--counterexample", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="When the check fails, write a trace that replays it here.")
@click.option("--plot", "picture", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Draw both runs' interrupt edges and reads to this .svg or .png (needs vmstate[plot]).")
def check(scenario, source, destination, downtime, rtc_base, rtc_clock, max_events, as_json, counterexample,
          picture):
    """Migrate a running machine at each `migrate` line of SCENARIO and prove
    the guest cannot tell.

    Exit 0 when both runs observe the same; 3 when they diverge exactly
    where QEMU 7.2's own migration does (the divergence is named: CI can
    accept 0 and 3); 1 when they diverge otherwise or the destination
    refuses the stream; 2 on bad input (a scenario without a migrate line
    included)."""
    from vmstate.check import checker, report
    from vmstate.machine.names import parse_versions

    from vmstate.core.outputs import check_output

    try:
        if picture is not None:
            from vmstate.check.plot import check_path
            check_path(picture)
        if counterexample is not None:
            check_output(counterexample, "--counterexample")
        text = load_trace_file(scenario, rtc_base, rtc_clock)[0]
        options = dict(source_versions=parse_versions(source),
                       destination_versions=parse_versions(destination),
                       downtime=downtime, rtc_base=rtc_base, rtc_clock=rtc_clock)
        with event_budget(max_events) as budget:
            verdict = checker.check(text, **options, budget=budget, keep=picture is not None)
        if counterexample is not None and not verdict.equivalent:
            from vmstate.core.outputs import write_atomically
            write_atomically(counterexample, checker.counterexample(text, verdict, **options).encode())
        if picture is not None:
            from vmstate.check.plot import draw
            draw(verdict, picture)
    except VmstateError as err:
        fail(err, as_json, scenario)
    except OSError as err:
        fail(UsageError(f"{err.filename}: {err.strerror}"), as_json)
    written = str(counterexample) if counterexample is not None and not verdict.equivalent else None
    if as_json:
        click.echo(json.dumps({**report.verdict_json(verdict), "counterexample": written}))
    else:
        report.render(verdict)
        if counterexample is not None:
            click.echo(f"counterexample written to {written}" if written else
                       f"no counterexample written to {counterexample}: the runs are equivalent", err=True)
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
        if as_json and markdown:
            raise UsageError("--json and --markdown each choose the whole output: give one of them")
        paths = list(scenarios) or grid.library()
        chosen = grid.select(device)
        with Progress("cross-version matrix", grid.checks(chosen, len(paths))) as progress:
            result = grid.build(paths, device, advance=lambda what: progress.update(advance=1, description=what))
    except VmstateError as err:
        fail(err, as_json)
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
        fail(err, False)
