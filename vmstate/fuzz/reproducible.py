"""One seed, one campaign: what hypothesis would otherwise draw from the code.

From version 6.131 on, hypothesis now and then draws an integer it found in
the source of the "local" modules loaded so far (its constant mining).  For
vmstate that pool is vmstate's own code: a seeded campaign then draws other
scenarios after any edit of a constant anywhere in the project, after
another test imported one more module, or on a machine where vmstate is
installed in site-packages (not local).  A planted bug's budget would hold
on one checkout only.  Seeded and derandomized campaigns, and the test
suite, therefore run with that pool empty: the draws are a function of the
seed and the strategies alone.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

try:  # hypothesis's internals: where they are not as expected, there is nothing to turn off
    from hypothesis.internal.conjecture import providers as _providers
    from hypothesis.internal.constants_ast import Constants as _Constants
except ImportError:  # pragma: no cover
    _providers = None


@contextlib.contextmanager
def seed_alone() -> Iterator[None]:
    """Within this block, hypothesis draws no constant mined from the code."""
    mined = getattr(_providers, "_get_local_constants", None)
    if mined is None:
        yield
        return
    _providers._get_local_constants = _Constants
    _providers.CONSTANTS_CACHE.cache.clear()
    try:
        yield
    finally:
        _providers._get_local_constants = mined
        _providers.CONSTANTS_CACHE.cache.clear()
