"""What every AppTest session of these tests shares."""

from __future__ import annotations

import pytest

# AppTest runs every session under this one id (streamlit/testing/v1/local_script_runner.py)
APPTEST_SESSION = "test session id"


@pytest.fixture(autouse=True)
def _the_session_closes_after_its_test():
    """A test's session is gone once the test ends, as a closed tab's is. On a server the
    scheduler learns it from Streamlit's runtime and drops the work only that session waited
    for (the trust curves behind every map it drew); AppTest has no runtime, so it is told
    here. Without it the next tests waited behind minutes of curves nobody would see.

    Then the test's scheduler is closed: its worker's torch threads, beside the test thread's,
    outnumbered the two cores, and libgomp then lets every thread of the process sleep
    between parallel regions (``serving.scheduler.close_shared``): every later test ran up to
    2.5x slower."""
    yield
    from serving.scheduler import close_shared
    from ui import results

    results.scheduler().forget(APPTEST_SESSION)
    close_shared(wait=60)
