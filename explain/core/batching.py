"""Batch sizes chosen by measurement, per (model, device, input shape).

On CPU small batches are fastest (large ones fall out of cache); a GPU wants large ones. The
first batched job of a (model, device, input shape) runs its first batches at each candidate
size, twice (useful work, not a separate benchmark), times the second of each (the first pays
for warm-up: a new batch shape makes the backend build its kernels), and every later batch, and
later job, uses the fastest per image.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn

CANDIDATES = {"cpu": (1, 2, 4, 8), "cuda": (16, 32, 64, 128), "mps": (4, 8, 16, 32)}
_BEST: weakref.WeakKeyDictionary[nn.Module, dict[tuple, int]] = weakref.WeakKeyDictionary()


class BatchSizer:
    def __init__(self, model: nn.Module, device: torch.device, shape: tuple,
                 fixed: int | None = None) -> None:
        self.key = (device.type, shape)
        known = fixed or _BEST.get(model, {}).get(self.key)
        self.model = model
        candidates = CANDIDATES.get(device.type, (1, 2, 4, 8))
        self.pending = [] if known else [size for size in candidates for _ in (0, 1)]
        self.best = known or candidates[-1]
        self.per_image: dict[int, float] = {}

    def next(self) -> int:
        return self.pending[0] if self.pending else self.best

    def record(self, size: int, seconds: float) -> None:
        """The time of a batch of ``size`` items, to learn from while candidates remain."""
        if not self.pending or size != self.pending[0]:
            return
        self.pending.pop(0)
        if self.pending[:1] != [size]:  # the second run of this size: the one that counts
            self.per_image[size] = seconds / size
        if not self.pending:
            self.best = min(self.per_image, key=self.per_image.__getitem__)
            _BEST.setdefault(self.model, {})[self.key] = self.best


def each_image(inputs: torch.Tensor, targets: list, progress, one) -> list:
    """``one(x, target, progress)`` for every image ``x`` (1, 3, H, W) of the batch ``inputs``,
    in order: for a method whose passes are per image (masked or noisy copies of it). Its
    ``progress(done, total)`` is counted over the whole batch."""
    count = len(inputs)
    results = []
    for i in range(count):
        report = None
        if progress is not None:
            def report(done: int, total: int, i: int = i) -> None:
                progress(i * total + done, count * total)
        results.append(one(inputs[i:i + 1], targets[i], report))
    return results


def learned_size(model: nn.Module, device: torch.device, shape: tuple) -> int | None:
    """The batch size measured fastest for (``model``, ``device``, ``shape``), once known."""
    return _BEST.get(model, {}).get((device.type, shape))
