import pytest
from hypothesis import settings

from vmstate.trace import oracle
from vmstate.core.errors import OracleUnavailable


# The suite a user runs to see that the install works must pass every time:
# every hypothesis test in it is derandomized (its examples are a function
# of the test alone), keeps nothing in a database and has no deadline (a
# shared machine's pauses are not failures).  Random exploration is
# `vmstate fuzz`'s job.
settings.register_profile("vmstate-suite", derandomize=True, database=None, deadline=None)
settings.load_profile("vmstate-suite")


def _reference_missing() -> str | None:
    try:
        oracle.binary()
    except OracleUnavailable as err:
        return str(err)
    return None


def pytest_collection_modifyitems(config, items):
    reason = _reference_missing()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "oracle" in item.keywords:
            item.add_marker(skip)
