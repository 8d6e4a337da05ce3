"""Which device explanations run on: CUDA when present, then Apple MPS, else the CPU."""

from __future__ import annotations

import os

import torch

DEVICE_ENV = "CNN_LENS_DEVICE"


def pick_device(preferred: str | torch.device | None = None) -> torch.device:
    """The device to use.

    ``preferred`` (or the ``CNN_LENS_DEVICE`` environment variable) overrides the automatic choice;
    an override naming a device this machine lacks raises ``ValueError``.
    """
    choice = preferred if preferred is not None else os.environ.get(DEVICE_ENV) or None
    if choice is not None:
        device = torch.device(choice)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device} was asked for, but CUDA is not available here")
        if device.type == "mps" and not _mps_available():
            raise ValueError("device mps was asked for, but MPS is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())
