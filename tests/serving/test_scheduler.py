"""The scheduler of model work: order, sharing, replacement, cancellation, failures, bounds;
and real explanations through it on the real model."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from explain import explain
from serving.scheduler import BELOW, MAIN, Busy, Scheduler, Stopped


@pytest.fixture()
def gate():
    """A job that holds the single worker until the test opens the gate."""
    opened = threading.Event()
    yield opened
    opened.set()


def blocker(gate):
    def hold(job):
        gate.wait(10)
        return "held"
    return hold


def test_first_come_first_served_within_a_priority_and_main_work_first(gate):
    scheduler = Scheduler(workers=1)
    order = []
    first = scheduler.submit(blocker(gate))
    jobs = [scheduler.submit(lambda job, i=i: order.append(i), priority=BELOW if i < 2 else MAIN)
            for i in range(4)]
    time.sleep(0.05)
    assert first.state == "running"
    assert [j.ahead() for j in jobs] == [3, 4, 1, 2]  # the running one, then MAIN ones first
    gate.set()
    for job in jobs:
        job.result(5)
    assert order == [2, 3, 0, 1]
    assert all(j.ahead() == 0 for j in jobs)


def test_one_key_one_computation_for_every_session(gate):
    scheduler = Scheduler(workers=1)
    scheduler.submit(blocker(gate))
    runs = []
    a = scheduler.submit(lambda job: runs.append(1) or "map", key="k", owner="alice")
    b = scheduler.submit(lambda job: runs.append(2) or "other", key="k", owner="bob")
    assert a is b and a.owners == {"alice", "bob"}
    gate.set()
    assert a.result(5) == "map" and runs == [1]


def test_a_newer_request_replaces_the_sessions_queued_one_unless_someone_else_waits(gate):
    scheduler = Scheduler(workers=1)
    scheduler.submit(blocker(gate))
    old = scheduler.submit(lambda job: "old", key="old", owner="alice", slot="map")
    shared = scheduler.submit(lambda job: "shared", key="shared", owner="alice", slot="curves")
    scheduler.submit(lambda job: "shared", key="shared", owner="bob", slot="curves")
    new = scheduler.submit(lambda job: "new", key="new", owner="alice", slot="map")
    scheduler.submit(lambda job: "next", key="next", owner="alice", slot="curves")
    assert old.state == "cancelled" and shared.state == "queued"  # bob still waits for it
    gate.set()
    assert new.result(5) == "new" and shared.result(5) == "shared"
    with pytest.raises(Stopped):
        old.result(1)


def test_cancel_stops_a_running_job_at_its_next_report():
    scheduler = Scheduler(workers=1)
    steps = []

    def long(job):
        for i in range(1000):
            job.report(i, 1000)
            steps.append(i)
            time.sleep(0.005)
        return "finished"

    job = scheduler.submit(long, owner="alice")
    while not steps:
        time.sleep(0.005)
    job.cancel("alice")
    with pytest.raises(Stopped):
        job.result(5)
    assert job.state == "cancelled" and len(steps) < 1000
    assert scheduler.submit(lambda job: "next").result(5) == "next"  # the worker goes on


def test_a_failing_job_fails_alone():
    scheduler = Scheduler(workers=1)
    bad = scheduler.submit(lambda job: 1 / 0)
    good = scheduler.submit(lambda job: "fine")
    with pytest.raises(ZeroDivisionError):
        bad.result(5)
    assert good.result(5) == "fine" and bad.state == "failed"


def test_a_bounded_queue_and_a_bounded_wait(gate):
    scheduler = Scheduler(workers=1, max_queue=2)
    scheduler.submit(blocker(gate))
    time.sleep(0.05)
    waiting = [scheduler.submit(lambda job: 1) for _ in range(2)]
    with pytest.raises(Busy, match="busy"):
        scheduler.submit(lambda job: 1)
    with pytest.raises(Busy, match="still waiting"):
        waiting[0].result(timeout=0.05)
    gate.set()
    assert [w.result(5) for w in waiting] == [1, 1]


def test_work_of_sessions_that_went_away_is_dropped(gate):
    gone = {"bob"}
    scheduler = Scheduler(workers=1, alive=lambda owner: owner not in gone)
    scheduler.submit(blocker(gate))
    ran = []
    job = scheduler.submit(lambda j: ran.append(1), owner="bob")
    kept = scheduler.submit(lambda j: ran.append(2), owner="alice")
    gate.set()
    kept.result(5)
    assert job.state == "cancelled" and ran == [2]
    other = scheduler.submit(lambda j: "x", owner="carol", slot="map")
    scheduler.forget("carol")
    assert other.state in ("cancelled", "done")


def test_running_work_of_sessions_that_went_away_stops_at_its_next_report():
    """A session closed while its work runs: the job stops at its next progress report (its
    worker goes to work somebody waits for); work another session shares goes on."""
    gone: set = set()
    scheduler = Scheduler(workers=1, alive=lambda owner: owner not in gone)
    started, steps = threading.Event(), []

    def long(job):
        started.set()
        for step in range(200):
            job.report(step, 200)
            steps.append(step)
            time.sleep(0.01)
        return "all"

    job = scheduler.submit(long, key="curves", owner="bob")
    assert started.wait(5)
    gone.add("bob")
    with pytest.raises(Stopped):
        job.result(5)
    assert job.state == "cancelled" and len(steps) < 200
    shared = scheduler.submit(long, key="curves-2", owner="bob")
    shared = scheduler.submit(long, key="curves-2", owner="alice")
    assert shared.result(10) == "all"  # alice still waits for it
    told = Scheduler(workers=1)  # no runtime to ask: told by forget
    started.clear()
    job = told.submit(long, key="c", owner="carol")
    queued = told.submit(lambda j: "later", owner="carol")
    assert started.wait(5)
    told.forget("carol")
    with pytest.raises(Stopped):
        job.result(5)
    assert queued.state == "cancelled"


def test_real_explanations_through_the_scheduler_equal_direct_ones(lite, chelsea, coffee):
    scheduler = Scheduler(workers=2, threads=1)
    cases = [(image, method) for image in (chelsea, coffee)
             for method in ("gradcam", "saliency", "guided_backprop")]
    jobs = [scheduler.submit(lambda job, i=i, m=m: explain(lite, i, m), key=(n, m))
            for n, (i, m) in enumerate(cases)]
    for job, (image, method) in zip(jobs, cases, strict=True):
        direct = explain(lite, image, method)
        got = job.result(120)
        assert got.target == direct.target
        np.testing.assert_allclose(got.raw, direct.raw, rtol=1e-4, atol=1e-6)


def test_one_worker_stays_free_for_main_work():
    scheduler = Scheduler(workers=2)
    release = threading.Event()
    started = []

    def curves(job):
        started.append(job.key)
        release.wait(10)
        return job.key

    slow = [scheduler.submit(curves, key=f"curves-{i}", priority=BELOW) for i in range(3)]
    time.sleep(0.1)
    assert started == ["curves-0"]  # the second worker does not take low-priority work
    begun = time.perf_counter()
    assert scheduler.submit(lambda job: "map", priority=MAIN).result(5) == "map"
    assert time.perf_counter() - begun < 1.0  # the map did not wait for the curves
    release.set()
    assert [j.result(5) for j in slow] == ["curves-0", "curves-1", "curves-2"]


def test_work_below_lends_its_worker_to_waiting_maps_at_each_report(lite, chelsea, coffee):
    """Real trust curves hold the only worker; a map asked for afterwards runs at their next
    progress report, on their thread, and both equal what they are when computed alone."""
    from explain.evaluate.faithfulness import random_map_curves

    scheduler = Scheduler(workers=1, threads=1)
    threads, finished = {}, []
    inputs = lite.preprocess(chelsea)

    def curves(job):
        threads["curves"] = threading.get_ident()
        got = random_map_curves(lite.model, inputs, 285, steps=20, count=4,
                                progress=job.report)
        finished.append("curves")
        return got

    def the_map(job):
        threads["map"] = threading.get_ident()
        got = explain(lite, coffee, "gradcam")
        finished.append("map")
        return got

    below = scheduler.submit(curves, priority=BELOW)
    while below.progress == (0, 0):  # the curves are under way
        time.sleep(0.005)
    main = scheduler.submit(the_map, priority=MAIN)
    got = main.result(60)
    assert finished == ["map"] and not below.finished
    assert threads["map"] == threads["curves"]
    np.testing.assert_allclose(got.raw, explain(lite, coffee, "gradcam").raw, rtol=1e-4,
                               atol=1e-6)
    alone = random_map_curves(lite.model, inputs, 285, steps=20, count=4)
    np.testing.assert_allclose(below.result(60).deletion, alone.deletion, rtol=1e-5, atol=1e-6)
    assert below.progress == (168, 168)  # 4 maps x 2 curves x 21 steps, reported in batches


def test_compatible_requests_run_as_one_batch_and_equal_single_ones(lite, gate):
    """What the server does on CUDA (batch_size > 1), run here on the CPU."""
    from explain.api import explain_batch
    from explain.data.samples import sample_image

    scheduler = Scheduler(workers=1, batch_size=8)
    scheduler.submit(blocker(gate))
    batches = []

    def batch_fn(items):
        batches.append(len(items))
        return explain_batch(lite, [i[0] for i in items], "gradcam", [i[1] for i in items])

    cases = [("chelsea", None), ("coffee", 968), ("rocket", None), ("flower", 985)]
    jobs = [scheduler.submit(lambda job, s=s, t=t: explain(lite, sample_image(s), "gradcam", t),
                             key=(s, t), batch=("lite", "gradcam"),
                             item=(sample_image(s), t), batch_fn=batch_fn) for s, t in cases]
    other = scheduler.submit(lambda job: "saliency alone", batch=("lite", "saliency"),
                             item=None, batch_fn=lambda items: ["batched"] * len(items))
    gate.set()
    for job, (sample, target) in zip(jobs, cases, strict=True):
        alone = explain(lite, sample_image(sample), "gradcam", target)
        got = job.result(120)
        assert got.target == alone.target
        np.testing.assert_allclose(got.heatmap, alone.heatmap, atol=1e-5)
    assert batches == [4] and other.result(5) == "saliency alone"  # not in their batch


def test_a_failing_batch_runs_its_jobs_one_by_one(gate):
    scheduler = Scheduler(workers=1, batch_size=8)
    scheduler.submit(blocker(gate))

    def batch_fn(items):
        raise MemoryError("out of memory for a batch")

    jobs = [scheduler.submit(lambda job, i=i: 1 / i, batch="b", item=i, batch_fn=batch_fn)
            for i in (1, 0, 2)]
    gate.set()
    assert jobs[0].result(5) == 1.0 and jobs[2].result(5) == 0.5
    with pytest.raises(ZeroDivisionError):
        jobs[1].result(5)  # the bad one fails alone
