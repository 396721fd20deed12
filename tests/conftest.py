import os

import pytest
from hypothesis import settings

from vmstate.fuzz.reproducible import seed_alone
from vmstate.trace import oracle
from vmstate.core.errors import OracleUnavailable


# The suite a user runs to see that the install works must pass every time:
# every hypothesis test in it is derandomized (its examples are a function
# of the test alone), keeps nothing in a database and has no deadline (a
# shared machine's pauses are not failures).  Random exploration is
# `vmstate fuzz`'s job.
# Nor does a test draw integers hypothesis mined from the code loaded so
# far, which would make its examples depend on the tests run before it.
settings.register_profile("vmstate-suite", derandomize=True, database=None, deadline=None)
settings.load_profile("vmstate-suite")


@pytest.fixture(autouse=True, scope="session")
def _draws_depend_on_the_seed_alone():
    with seed_alone():
        yield


def _reference_missing() -> str | None:
    try:
        oracle.binary()
    except OracleUnavailable as err:
        return str(err)
    return None


def pytest_collection_modifyitems(config, items):
    """On a user's machine a missing reference skips the tests that need it,
    with the reason; in CI (CI=true) it is an error: a green run must mean
    that the live differential tests ran."""
    reason = _reference_missing()
    if reason is None:
        return
    if os.environ.get("CI") == "true" and any("oracle" in item.keywords for item in items):
        raise pytest.UsageError(f"CI=true but {reason}")
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "oracle" in item.keywords:
            item.add_marker(skip)
