"""The formats themselves: ``schema source`` (and, with the dump, ``schema dump``)."""
from __future__ import annotations

import click

from vmstate.cli.group import fail, main
from vmstate.core.errors import UsageError, VmstateError


@main.group()
def schema():
    """The sections' formats as vmstate describes them."""


@schema.command("source")
@click.argument("section", metavar="SECTION")
@click.argument("version", type=int, required=False)
def schema_source(section, version):
    """Print the code generated for SECTION at VERSION (default: its
    current one): the fast path's pack, unpack and rule checks, and the
    section's saver, each struct run preceded by the fields it holds.

    SECTION is a device name in any spelling (i8254, pit, hpet, rtc, pm,
    timer, PCIHost, pcspk) or a section's idstr."""
    from schemas import SECTIONS
    from vmstate.machine.names import device
    from vmstate.wire.section import source

    try:
        name = device(section)
        schema = next(s for s in SECTIONS if s.device == name)
        d = schema.description
        chosen = d.version if version is None else version
        if not d.minimum <= chosen <= d.version:
            raise UsageError(f"{name} has versions {d.minimum}..{d.version}, not {chosen}")
        click.echo(source(d, chosen), nl=False)
    except VmstateError as err:
        fail(err, False)
