"""The model cache: one loaded backbone per (name, weights, device), shared by every thread.

Bounded by a count and a byte budget, evicting the least recently used. Loading happens outside
the cache-wide lock, under a per-key lock, so a slow load never blocks hits on other models and
two threads asking for the same model load it once.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch

from .backbone import CHECKPOINT, PRETRAINED, Backbone
from .device import pick_device
from .loading import load_backbone

Key = tuple[str, str, str, str]


class ModelCache:
    def __init__(
        self,
        max_models: int = 3,
        max_bytes: int | None = 2 << 30,
        loader: Callable[..., Backbone] = load_backbone,
    ) -> None:
        if max_models < 1:
            raise ValueError("max_models must be at least 1")
        self.max_models = max_models
        self.max_bytes = max_bytes
        self._loader = loader
        self._entries: OrderedDict[Key, Backbone] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[Key, threading.Lock] = {}
        self.loads = 0  # how many times the loader ran (for tests and the UI)

    def get(
        self,
        name: str,
        weights: str = PRETRAINED,
        device: str | torch.device | None = None,
        checkpoint: bytes | None = None,
        class_names: bytes | None = None,
    ) -> Backbone:
        dev = pick_device(device)
        key = (name, weights, _digest(checkpoint, class_names) if weights == CHECKPOINT else "",
               str(dev))
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:  # another thread may have loaded it while we waited
                if key in self._entries:
                    self._entries.move_to_end(key)
                    return self._entries[key]
            try:
                backbone = self._loader(name, weights, dev, checkpoint=checkpoint,
                                        class_names=class_names)
            finally:  # a load that failed keeps no lock (a bad checkpoint each upload, else)
                with self._lock:
                    self._key_locks.pop(key, None)
            with self._lock:
                self.loads += 1
                self._entries[key] = backbone
                self._evict(keep=key)
            return backbone

    def _evict(self, keep: Key) -> None:
        def over() -> bool:
            too_many = len(self._entries) > self.max_models
            total = sum(b.nbytes for b in self._entries.values())
            return too_many or (self.max_bytes is not None and total > self.max_bytes)

        while over() and len(self._entries) > 1:
            oldest = next(iter(self._entries))
            if oldest == keep:
                self._entries.move_to_end(keep)
                continue
            del self._entries[oldest]

    def entries(self) -> list[Key]:
        with self._lock:
            return list(self._entries)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _digest(*blobs: bytes | str | Path | None) -> str:
    h = hashlib.sha256()
    for blob in blobs:
        if isinstance(blob, str | Path):
            blob = Path(blob).read_bytes()
        h.update(b"\0" if blob is None else hashlib.sha256(blob).digest())
    return h.hexdigest()[:16]
