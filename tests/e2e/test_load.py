"""Four sessions open Explain links at the same moment through Streamlit's websocket protocol
(bench/load.py, which `make bench` runs at 20 and 50 sessions): every one gets its own photo's
map, without error. No timing is asserted: these machines are noisy."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_module():
    spec = importlib.util.spec_from_file_location("bench_load", ROOT / "bench" / "load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_four_sessions_at_once_each_see_their_own_photo(server):
    bench = load_module()
    samples = ["chelsea", "coffee", "rocket", "flower"]
    rounds, visits = bench.load(server, sessions=4, rounds=1, timeout=300, samples=samples)
    assert len(visits) == 4
    assert {v.sample for v in visits} == set(samples)  # four different photos
    for v in visits:
        assert not v.errors, (v.sample, v.method, v.errors)
        assert not v.crosstalk, (v.sample, v.method, v.crosstalk)
        assert v.to_map is not None and v.to_end is not None and v.first_paint is not None
    assert rounds[0]["errors"] == 0 and rounds[0]["crosstalk"] == 0
