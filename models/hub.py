"""Pretrained weights from the torch hub cache: loaded, or one clear ``WeightsUnavailable``
saying which file to copy where (there is no network here to download them from)."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .errors import WeightsUnavailable

log = logging.getLogger("cnn_lens.models")


def from_hub(load: Callable[[], nn.Module], url: str, kind: str, title: str,
             instead: str) -> nn.Module:
    """``load()`` (a torchvision builder with its weights: it reads the hub cache, or
    downloads); when it fails, ``WeightsUnavailable`` naming the ``kind`` of weights (ImageNet,
    COCO) of ``title``, what the user can do ``instead`` and the file the server needs."""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    try:
        return load()
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        # URLError is an OSError; a damaged file fails in torch.load in several ways. The
        # user reads what to do; the server's path and the exception go to the log.
        damaged = cached.exists()
        log.warning("%s weights of %s unavailable (%s %s): %s: %s", kind, title, cached,
                    "damaged" if damaged else "missing", type(exc).__name__, exc)
        where = ("the copy on this server is damaged" if damaged
                 else "they are not on this server and cannot be downloaded from here")
        raise WeightsUnavailable(
            f"The {kind} weights of {title} are not available: {where}. {instead} Whoever "
            f"runs the server can add the file {cached.name} to the torch hub cache (see the "
            "README, \"Backbones and weights\")."
        ) from exc
