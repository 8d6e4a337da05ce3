"""One process-wide scheduler for model work (predictions, explanations, curves, features, class
pictures): a bounded number of worker threads sized to the device, torch's intra-op threads set
so that workers x threads = cores, requests served first come first served within a priority
(what a page shows first, then what it shows below), a queue with a bound.

- A request is a ``Job``: its place in the queue (``ahead()``), its progress, its result.
- Requests with the same ``key`` share one job (two sessions asking for the same map wait for
  one computation).
- A session's newer request for a ``slot`` (say, "the map of this page") replaces its own
  older one that has not started: a user who clicks on does not wait for work nobody will see.
- A running job below the main priority lends its worker to the main jobs waiting in the queue
  at each of its progress reports (``Job.report``): they run on its thread, then it goes on. A
  map never waits behind seconds of trust curves.
- ``cancel()`` stops a queued job at once and a running one at its next progress report;
  a job whose sessions have all gone (``alive``, or ``forget``) is dropped before it starts,
  or stopped at its next progress report if it runs.
- Compatible requests (the same ``batch`` key: model, method, layer) queued at the same time
  run as one batch, each with its own input (``item``), when the scheduler batches
  (``batch_size`` > 1: on CUDA). A batch that raises (out of memory, a bad image) is run again
  one job at a time, so that a failure stays with its own request.
- A job that raises fails alone: the error is its result; the worker goes on.
- A queue over ``max_queue`` refuses new requests with ``Busy``; a caller that waited longer
  than it wanted gets ``Busy`` too (``Job.result``).
"""

from __future__ import annotations

import atexit
import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("cnn_lens.scheduler")

MAIN, BELOW = 0, 1  # priorities: what a page shows first, and what it shows below it


class Busy(Exception):
    """The server is busy: the request was refused or waited too long. ``str`` is for users."""


class Stopped(Exception):
    """Raised inside a job by ``Job.report`` once the job was cancelled."""


@dataclass(eq=False)
class Job:
    """One request. ``fn(job)`` computes its result; it may call ``job.report(done, total)``
    (which raises ``Stopped`` once the job is cancelled) and ``job.share(**values)`` (previews
    a page may show while it runs)."""

    fn: Callable[[Job], Any]
    key: Hashable | None
    priority: int
    seq: int
    owners: set = field(default_factory=set)
    state: str = "queued"  # queued, running, done, failed, cancelled
    progress: tuple[int, int] = (0, 0)
    shared: dict = field(default_factory=dict)
    _value: Any = None
    _error: BaseException | None = None
    _done: threading.Event = field(default_factory=threading.Event)
    _scheduler: Scheduler | None = None
    batch: Hashable | None = None  # jobs with equal keys may run as one batch
    item: Any = None  # this job's input to ``batch_fn``
    batch_fn: Callable[[list], list] | None = None  # items -> results, in order

    def report(self, done: int, total: int) -> None:
        """Progress, and a safe point: raises ``Stopped`` once the job was cancelled; a job below
        the main priority first runs the main jobs waiting for a worker (the caller must hold
        no hook, lock or grad-mode change here that another job could see)."""
        self.progress = (done, total)
        if self.state == "running" and self._scheduler is not None:
            self._scheduler._stop_if_unwanted(self)
        if self.state == "cancelled":
            raise Stopped()
        if self.priority > MAIN and self._scheduler is not None:
            self._scheduler._lend()
            if self.state == "cancelled":
                raise Stopped()

    def share(self, **values) -> None:
        self.shared.update(values)

    def ahead(self) -> int:
        """How many requests will run before this one starts (0 once it runs)."""
        return self._scheduler.ahead(self) if self._scheduler is not None else 0

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> Any:
        """The value, or the job's own exception; ``Busy`` when it is not done in ``timeout``,
        ``Stopped`` when it was cancelled."""
        if not self._done.wait(timeout):
            raise Busy("The server is busy: your request is still waiting. Try again in a "
                       "moment.")
        if self.state == "cancelled":
            raise Stopped()
        if self._error is not None:
            raise self._error
        return self._value

    def cancel(self, owner: Hashable | None = None) -> None:
        """Cancel for ``owner`` (None: for everyone). A job still wanted by another owner goes
        on; one nobody wants is dropped if queued, stopped at its next report if running."""
        if self._scheduler is not None:
            self._scheduler.cancel(self, owner)

    def _finish(self, state: str, value: Any = None, error: BaseException | None = None) -> None:
        self.state, self._value, self._error = state, value, error
        self._done.set()


def default_workers(device: str = "cpu") -> tuple[int, int]:
    """(workers, torch threads per worker) for ``device``: on CPU as many single-threaded workers
    as cores, up to 2 (two requests at once keep both cores busy without oversubscribing them;
    more would only share the same cores), threads = cores / workers; on CUDA 2 workers that
    share the GPU, each with one CPU thread. ``CNN_LENS_WORKERS`` overrides the count."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = max(1, cores or 1)
    workers = int(os.environ.get("CNN_LENS_WORKERS", 0)) or min(2, cores)
    if device != "cpu":
        return workers, 1
    return workers, max(1, cores // workers)


class Scheduler:
    def __init__(self, workers: int = 1, threads: int = 1, max_queue: int = 200,
                 alive: Callable[[Hashable], bool] | None = None, batch_size: int = 1) -> None:
        if workers < 1 or threads < 1 or batch_size < 1:
            raise ValueError("a scheduler needs at least one worker, one thread, batches of one")
        self.workers, self.threads, self.max_queue = workers, threads, max_queue
        self.batch_size = batch_size
        self._alive = alive
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._queue: list[tuple[int, int, Job]] = []
        self._by_key: dict[Hashable, Job] = {}
        self._slots: dict[tuple[Hashable, Hashable], Job] = {}
        self._running: set[Job] = set()
        self._seq = itertools.count()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, daemon=True,
                                          name=f"cnn-lens-worker-{i}") for i in range(workers)]
        for thread in self._threads:
            thread.start()

    # --- requests ----------------------------------------------------------------------------

    def submit(self, fn: Callable[[Job], Any], key: Hashable | None = None,
               owner: Hashable | None = None, slot: Hashable | None = None,
               priority: int = MAIN, batch: Hashable | None = None, item: Any = None,
               batch_fn: Callable[[list], list] | None = None) -> Job:
        """Queue ``fn`` (or join the job already queued or running under ``key``). With
        ``batch`` and ``batch_fn``, the job may run with others of the same ``batch`` as
        ``batch_fn([item, ...])``; alone, it runs ``fn``."""
        with self._lock:
            if self._closed:
                raise Busy("The server is shutting down.")
            job = self._by_key.get(key) if key is not None else None
            if job is None or job.state not in ("queued", "running"):
                if len(self._queue) >= self.max_queue:
                    raise Busy(f"The server is busy ({len(self._queue)} requests waiting). Try "
                               "again in a moment.")
                job = Job(fn, key, priority, next(self._seq), _scheduler=self, batch=batch,
                          item=item, batch_fn=batch_fn)
                heapq.heappush(self._queue, (priority, job.seq, job))
                if key is not None:
                    self._by_key[key] = job
                self._ready.notify()
            elif priority < job.priority and job.state == "queued":  # wanted sooner now
                job.priority = priority
                self._queue = [(j.priority, j.seq, j) for _, _, j in self._queue]
                heapq.heapify(self._queue)
            if owner is not None:
                job.owners.add(owner)
                if slot is not None:
                    older = self._slots.get((owner, slot))
                    self._slots[(owner, slot)] = job
                    if older is not None and older is not job:
                        self._drop_owner(older, owner)
            return job

    def ahead(self, job: Job) -> int:
        with self._lock:
            if job.state != "queued":
                return 0
            return len(self._running) + sum(1 for p, s, j in self._queue
                                             if (p, s) < (job.priority, job.seq)
                                             and j.state == "queued")

    def cancel(self, job: Job, owner: Hashable | None = None) -> None:
        with self._lock:
            if owner is None:
                job.owners.clear()
                self._stop(job)
            else:
                self._drop_owner(job, owner)

    def forget(self, owner: Hashable) -> None:
        """A session went away: cancel what only it was waiting for (queued: dropped; running:
        stopped at its next report)."""
        with self._lock:
            for (who, slot) in [k for k in self._slots if k[0] == owner]:
                del self._slots[(who, slot)]
            for job in [j for *_, j in self._queue] + list(self._running):
                if owner in job.owners:
                    self._drop_owner(job, owner)

    def stats(self) -> dict:
        with self._lock:
            return {"queued": sum(1 for *_, j in self._queue if j.state == "queued"),
                    "running": len(self._running), "workers": self.workers,
                    "threads": self.threads}

    def close(self, wait: float = 0.0) -> None:
        """Refuse new requests, cancel the queued ones, stop the running ones at their next
        report, and give the workers up to ``wait`` seconds to finish: a worker still inside
        torch when the interpreter exits can abort the process."""
        with self._lock:
            self._closed = True
            for _, _, job in self._queue:
                self._stop(job)
            for job in self._running:
                self._stop(job)
            self._ready.notify_all()
        deadline = time.monotonic() + wait
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # --- inside, under the lock --------------------------------------------------------------

    def _drop_owner(self, job: Job, owner: Hashable) -> None:
        had = bool(job.owners)
        job.owners.discard(owner)
        if had and not job.owners:
            self._stop(job)

    def _stop(self, job: Job) -> None:
        if job.state == "queued":
            job._finish("cancelled")
            self._forget_key(job)
        elif job.state == "running":
            job.state = "cancelled"  # the job's next report() raises Stopped

    def _forget_key(self, job: Job) -> None:
        if job.key is not None and self._by_key.get(job.key) is job:
            del self._by_key[job.key]

    def _next_main(self) -> list[Job] | None:
        """The next main job waiting (with its batch), or None: for a worker lent by a job
        below the main priority."""
        while self._queue and self._queue[0][0] == MAIN and not self._closed:
            job = heapq.heappop(self._queue)[2]
            if job.state != "queued" or not self._wanted(job):
                continue
            job.state = "running"
            self._running.add(job)
            return self._batch_with(job)
        return None

    def _stop_if_unwanted(self, job: Job) -> None:
        """At a running job's report: once every session that asked for it has gone (a closed
        tab), it stops there, and its worker goes to work somebody waits for."""
        if self._alive is not None and job.owners \
                and not any(self._alive(o) for o in list(job.owners)):
            with self._lock:
                self._stop(job)

    def _wanted(self, job: Job) -> bool:
        """False (and the job dropped) when every session that asked for it has gone."""
        if self._alive is not None and job.owners and not any(self._alive(o) for o in job.owners):
            job._finish("cancelled")
            self._forget_key(job)
            return False
        return True

    def _next(self) -> list[Job] | None:
        """The next job to run. At most ``workers - 1`` jobs below the main priority run at once
        (with one worker, one): a job of trust curves takes seconds and cannot be preempted, so
        one worker stays free for the maps that pages are waiting for."""
        while True:
            below = sum(1 for j in self._running if j.priority > MAIN)
            while self._queue:
                item = heapq.heappop(self._queue)
                job = item[2]
                if job.state != "queued" or not self._wanted(job):
                    continue
                if job.priority > MAIN and below >= max(1, self.workers - 1):
                    heapq.heappush(self._queue, item)  # the heap holds only such jobs now
                    break
                job.state = "running"
                self._running.add(job)
                return self._batch_with(job)
            if self._closed:
                return None
            self._ready.wait()

    def _batch_with(self, job: Job) -> list[Job]:
        """``job`` and the queued jobs that may run in one batch with it (up to batch_size)."""
        if self.batch_size < 2 or job.batch is None or job.batch_fn is None:
            return [job]
        group, keep = [job], []
        for item in self._queue:
            other = item[2]
            if (len(group) < self.batch_size and other.state == "queued"
                    and other.batch == job.batch and other.batch_fn is not None):
                other.state = "running"
                self._running.add(other)
                group.append(other)
            else:
                keep.append(item)
        heapq.heapify(keep)
        self._queue = keep
        return group

    # --- workers -----------------------------------------------------------------------------

    def _work(self) -> None:
        try:
            import torch

            torch.set_num_threads(self.threads)  # this worker's intra-op threads
        except ImportError:  # pragma: no cover - torch is a requirement
            pass
        while True:
            with self._lock:
                group = self._next()
            if group is None:
                return
            self._execute(group)

    def _lend(self) -> None:
        """Run the main jobs waiting in the queue on this worker (see ``Job.report``)."""
        while True:
            with self._lock:
                group = self._next_main()
            if group is None:
                return
            self._execute(group)

    def _execute(self, group: list[Job]) -> None:
        if len(group) > 1:
            started = time.perf_counter()
            try:
                values = group[0].batch_fn([job.item for job in group])
            except BaseException as exc:  # out of memory, a bad item: one at a time
                log.info("a batch of %d failed (%s: %s); running its jobs one by one",
                         len(group), type(exc).__name__, exc)
            else:
                for job, value in zip(group, values, strict=True):
                    self._settle(job, "cancelled" if job.state == "cancelled" else "done",
                                 value, None)
                log.debug("batch of %d in %.3f s", len(group), time.perf_counter() - started)
                return
        for job in group:
            self._run(job)

    def _run(self, job: Job) -> None:
        try:
            value = job.fn(job)
        except Stopped:
            state, value, error = "cancelled", None, None
        except BaseException as exc:  # a failing job fails alone
            log.info("job %r failed: %s: %s", job.key, type(exc).__name__, exc)
            state, value, error = "failed", None, exc
        else:
            state, error = ("cancelled" if job.state == "cancelled" else "done"), None
        self._settle(job, state, value, error)

    def _settle(self, job: Job, state: str, value: Any, error: BaseException | None) -> None:
        with self._lock:
            self._running.discard(job)
            self._forget_key(job)
            job._finish(state, value, error)
            self._ready.notify_all()  # a worker held back from low-priority work may go


_shared: Scheduler | None = None
_shared_lock = threading.Lock()


def shared(device: str = "cpu", alive: Callable[[Hashable], bool] | None = None) -> Scheduler:
    """The process's scheduler (made on first use, sized to ``device``)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            workers, threads = default_workers(device)
            # on a GPU compatible requests of different sessions run as one batch; on a CPU a
            # batch is no faster per image than one image (explain/batching.py), so none
            _shared = Scheduler(workers, threads, alive=alive,
                                batch_size=16 if device == "cuda" else 1)
            atexit.register(_shared.close, wait=30.0)
        return _shared


def close_shared(wait: float = 30.0) -> None:
    """Close the process's scheduler and forget it (the next use makes a new one): for a
    process done with its pages, such as a test's. Its workers exit, and with them their torch
    thread pools: libgomp counts every live pool's threads, and while they outnumber the cores
    every thread of the process spins only briefly before it sleeps between parallel regions
    (the main thread's forward passes took 2-3x as long)."""
    global _shared
    with _shared_lock:
        scheduler, _shared = _shared, None
    if scheduler is not None:
        scheduler.close(wait=wait)
