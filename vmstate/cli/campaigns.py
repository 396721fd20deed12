"""Campaigns: ``fuzz`` and ``hostile``."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from vmstate.cli.group import fail, main
from vmstate.core.errors import UsageError, VmstateError


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
    from vmstate.fuzz.hostile import campaign as campaigns

    try:
        report = campaigns.run(inputs, seed, out, as_json)
    except VmstateError as err:
        fail(err, as_json)
    except OSError as err:
        fail(UsageError(f"{out}: {err.strerror}"), as_json)
    sys.exit(0 if report.clean else 1)


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
              help="Directory for counterexample traces, made when there is one to write.")
@click.option("--database", default=None, metavar="DIR|redis://...",
              help="Hypothesis example database shared by the workers: a directory (default "
                   "~/.cache/vmstate/fuzz-database, or under VMSTATE_CACHE) or a redis:// URL (needs vmstate[redis]).")
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

    from vmstate.core.outputs import check_folder

    try:
        if examples is not None and time_limit is not None:
            raise UsageError("give --examples or --time, not both")
        check_folder(out, "--out")
        config = fuzz.Config(devices=device_names(devices) if devices else DEVICES,
                             examples=examples if examples is not None or time_limit is not None else 200,
                             time_limit=time_limit, workers=workers, seed=seed, out=out, database=database)
        if time_limit is not None:
            config.examples = None
        result = fuzz.campaign(config, progress=True)
    except VmstateError as err:
        fail(err, as_json)
    except OSError as err:
        fail(UsageError(f"{out}: {err.strerror}"), as_json)
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
