"""The server-wide result store of the dashboard: LRU by count and by bytes."""

import numpy as np

from explain import Explanation
from ui.results import ResultStore, _nbytes


def explanation(size: int) -> Explanation:
    return Explanation("gradcam", 1, np.zeros((size, size), np.float32), np.zeros((7, 7)), 0.1,
                       0.5)


def test_bytes_bound_and_lru_order():
    store = ResultStore(max_entries=10, max_bytes=3 * 400 * 400 * 4 + 10_000)
    calls = []
    for n in range(4):  # each about 640 kB: the fourth pushes the first out
        store.get(("e", n), lambda n=n: calls.append(n) or explanation(400))
    assert _nbytes(explanation(400)) == 400 * 400 * 4 + 7 * 7 * 8
    store.get(("e", 1), lambda: calls.append("again") or explanation(400))  # still there
    store.get(("e", 0), lambda: calls.append("recomputed") or explanation(400))
    assert calls == [0, 1, 2, 3, "recomputed"]


def test_count_bound_keeps_at_least_one():
    store = ResultStore(max_entries=2, max_bytes=1)
    assert store.get("big", lambda: explanation(100)).heatmap.shape == (100, 100)
    assert store.get("big", lambda: None) is not None  # a single oversized entry stays
