"""Streams as a user holds them (QEMU's own, or vmstate snapshots): ``inspect``
and ``diff``."""
from __future__ import annotations

import json
import sys

import click

from vmstate.cli.group import clock_option, fail, machine_options, main
from vmstate.core.errors import StreamError, VmstateError

#: The sections whose fields ``inspect`` shows without --all: vmstate's own,
#: and the q35 LPC, where that machine's PM timer is.
SHOWN = ("0000:00:1f.0/ICH9LPC",)


def _open(path, clock, rtc_base, rtc_clock, on_page=None):
    from vmstate.machine.qemu_streams import open_stream

    return open_stream(path, clock, on_page=on_page, rtc_base=rtc_base, rtc_clock=rtc_clock)


def context(path, offset: int | None, span: int = 16) -> str | None:
    """The bytes around ``offset`` of a file, as a hex dump line with the
    offending byte marked: what a desync looks like."""
    if offset is None or path == "-":
        return None
    try:
        with open(path, "rb") as handle:
            start = max(0, offset - span)
            handle.seek(start)
            chunk = handle.read(2 * span)
    except OSError:
        return None
    cells = [f"[{b:02x}]" if start + i == offset else f"{b:02x}" for i, b in enumerate(chunk)]
    return f"{start:#010x}: " + " ".join(cells)


def refuse(err: VmstateError, path, as_json: bool) -> None:
    """A stream error with the bytes around it."""
    shown = context(path, getattr(err, "offset", None)) if isinstance(err, StreamError) else None
    if shown and not as_json:
        click.echo(f"bytes around it: {shown}", err=True)
    fail(err, as_json, path)


def _summary(opened, path) -> dict:
    real = opened.stream
    return {"file": str(path), "format": opened.format, "machine_type": real.machine_type, "size": real.size,
            "footers": real.footers, "description": real.description is not None,
            "configuration": real.configuration, "ram": real.ram.to_json(), "header": opened.header,
            "clock": opened.clock}


@main.command()
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, allow_dash=True))
@clock_option
@machine_options
@click.option("--all", "every", is_flag=True, help="Show the fields of every section, not only the timers'.")
@click.option("--check", is_flag=True, help="Write every decoded section again and prove the bytes identical.")
@click.option("--json", "as_json", is_flag=True, help="Print every record and section, fields and units, as JSON.")
def inspect(path, clock, rtc_base, rtc_clock, every, check, as_json):
    """Read FILE (a QEMU migration stream, or a vmstate snapshot) and show
    every section: where it is, how it was read, its fields and, for the
    timer devices, what they mean (when a timer fires, what a read returns,
    what time it is).

    Timer sections are read by vmstate's schemas, every other device by the
    stream's JSON description, and a section nothing describes is carried
    to its footer.  Exit 0 when the whole stream reads (and, with --check,
    writes back identically), 1 when --check finds a difference, 2 when the
    stream is refused."""
    from vmstate.machine.qemu_streams import reencode, report

    try:
        opened = _open(path, clock, rtc_base, rtc_clock)
    except VmstateError as err:
        refuse(err, path, as_json)
    items = report(opened.stream, clock)
    sections = [i for i in items if i["kind"] == "section"]
    checked = reencode(opened.stream) if check else None
    if as_json:
        out = {**_summary(opened, path), "records": [i for i in items if i["kind"] != "section"],
               "sections": sections}
        if checked is not None:
            out["check"] = checked
        click.echo(json.dumps(out))
    else:
        _render(opened, path, items, every, checked)
    sys.exit(1 if checked and any(c["identical"] is False for c in checked) else 0)


def _render(opened, path, items, every, checked) -> None:
    from rich.console import Console
    from rich.table import Table

    from vmstate.machine.qemu_streams import TIMER_SECTIONS
    from vmstate.present import shown

    real, console = opened.stream, Console()
    ram = real.ram
    console.print(f"[bold]{path}[/]: {'vmstate snapshot' if opened.format == 'snapshot' else 'QEMU stream'}, "
                  f"machine {real.machine_type or '(none named)'}, {real.size} bytes, "
                  f"{len(real.sections())} device sections, JSON description: "
                  f"{'yes' if real.description is not None else 'no'}, footers: {real.footers}")
    if ram.total is not None:
        console.print(f"RAM: {ram.total:#x} bytes in {len(ram.blocks)} blocks ({', '.join(ram.blocks)}), "
                      f"{ram.pages} pages, {ram.zero_pages} zero pages")
    table = Table("offset", "length", "record", "section", "inst", "ver", "read by", title="records")
    for item in items:
        table.add_row(f"{item['offset']:#x}", str(item["length"]), item["kind"], item.get("section", "") or "",
                      str(item.get("instance_id", "") if item.get("instance_id") is not None else ""),
                      str(item.get("version", "")), item.get("read_by", item.get("command", "")))
    console.print(table)
    for item in items:
        if item["kind"] != "section" or not (every or item["section"] in TIMER_SECTIONS + SHOWN):
            continue
        fields = Table("field", "value", "meaning", title=f"{item['section']} (version {item['version']}, "
                                                           f"read by {item['read_by']})")
        for name, value in item["fields"].items():
            fields.add_row(name, shown(value), item["units"].get(name, ""))
        console.print(fields)
        if item.get("note"):
            console.print(f"[yellow]{item['note']}[/]")
    if checked is not None:
        same = [c for c in checked if c["identical"]]
        differ = [c for c in checked if c["identical"] is False]
        console.print(f"--check: {len(same)} sections written back identically, {len(differ)} differ, "
                      f"{sum(c['identical'] is None for c in checked)} carried undecoded")
        for c in differ:
            console.print(f"[red]{c['section']}[/] ({c['read_by']}) differs at {c['differs_at']:#x}")


@main.command()
@click.argument("first", metavar="A", type=click.Path(dir_okay=False, allow_dash=True))
@click.argument("second", metavar="B", type=click.Path(dir_okay=False, allow_dash=True))
@clock_option
@machine_options
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
def diff(first, second, clock, rtc_base, rtc_clock, as_json):
    """Field-level differences between two streams or snapshots (any mix):
    sections only in one, versions that differ, every field that differs
    (raw values, and units for the timers), and RAM pages that differ.

    Exit 0 when identical, 1 when they differ, 2 on bad input."""
    from vmstate.machine.qemu_streams import compare

    if first == "-" and second == "-":
        fail(VmstateError("A and B cannot both be standard input"), as_json)
    pages: list[dict] = [{}, {}]
    opened = []
    for path, into in ((first, pages[0]), (second, pages[1])):
        try:
            opened.append(_open(path, clock, rtc_base, rtc_clock, on_page=_page_digest(into)))
        except VmstateError as err:
            refuse(err, path, as_json)
    result = compare(opened[0], opened[1], pages[0], pages[1], clock)
    if as_json:
        click.echo(json.dumps(result))
    else:
        _render_diff(first, second, result)
    sys.exit(0 if result["identical"] else 1)


def _page_digest(into: dict):
    import hashlib

    def keep(block, offset, data, fill):
        into[(block, offset)] = ("fill", fill) if data is None else ("data", hashlib.blake2b(data, digest_size=8)
                                                                      .digest())
    return keep


def _render_diff(first, second, result) -> None:
    from rich.console import Console
    from rich.table import Table

    from vmstate.present import shown

    console = Console()
    if result["identical"]:
        console.print(f"{first} and {second}: identical (device state and RAM)")
        return
    for name in result["only_in_a"]:
        console.print(f"only in {first}: {name}")
    for name in result["only_in_b"]:
        console.print(f"only in {second}: {name}")
    for section in result["sections"]:
        table = Table("field", str(first), str(second), title=section["section"] + (
            f" (version {section['versions'][0]} vs {section['versions'][1]})" if section.get("versions") else ""))
        for change in section["fields"]:
            table.add_row(change["field"], "(absent)" if change["a"] is None else shown(change["a"]),
                          "(absent)" if change["b"] is None else shown(change["b"]))
        console.print(table)
    ram = result.get("ram")
    if ram and ram["differ"]:
        console.print(f"RAM: {ram['differ']} pages differ (first: {', '.join(ram['first'])})")
