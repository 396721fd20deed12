"""Numbers as QEMU's command syntax writes them."""
from __future__ import annotations

import re

# ASCII digits only: Python's int() would take any Unicode digit.
_NUMBER = re.compile(r"([+-]?)(?:0[xX]([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*))")


def parse_number(word: str, signed: bool = False) -> int:
    """C's strtoul/strtoll with base 0, as qemu_strtoul uses: 0x for hex, a
    leading 0 for octal, else decimal; the whole word must be the number."""
    match = _NUMBER.fullmatch(word)
    if match is None or (match.group(1) and not signed):
        raise ValueError(word)
    sign, hexa, octal, decimal = match.groups()
    if hexa is not None:
        value = int(hexa, 16)
    elif octal is not None:
        value = int(octal, 8)
    else:
        value = int(decimal, 10)
    return -value if sign == "-" else value
