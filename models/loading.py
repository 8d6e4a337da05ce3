"""Building backbones with their weights: pretrained, untrained, or a user's checkpoint.

Checkpoints are read with ``torch.load(..., weights_only=True)`` only: a file that needs pickled
code is refused before any of it runs.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
import torchvision
from torch import nn

from .backbone import CHECKPOINT, PRETRAINED, UNTRAINED, Backbone
from .device import pick_device
from .errors import CheckpointError
from .registry import get_spec

MAX_CHECKPOINT_BYTES = 1 << 30
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")
_PREFIXES = ("module.", "_orig_mod.")


def imagenet_categories() -> tuple[str, ...]:
    """The 1000 ImageNet class names, as torchvision's weights carry them (no download)."""
    return tuple(torchvision.models.ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def load_backbone(
    name: str,
    weights: str = PRETRAINED,
    device: str | torch.device | None = None,
    checkpoint: bytes | str | Path | None = None,
    class_names: bytes | str | Path | None = None,
) -> Backbone:
    """Build ``name`` with ``weights`` ("pretrained", "untrained" or "checkpoint") on ``device``.

    The model is put in eval mode and its parameters are frozen (``requires_grad=False``): the
    caller owns it, explainers only differentiate to inputs and activations.
    Raises ``UnknownBackbone``, ``WeightsUnavailable`` or ``CheckpointError``.
    """
    spec = get_spec(name)
    weights_id = ""
    if weights == PRETRAINED:
        model, categories = spec.load_pretrained(), imagenet_categories()
    elif weights == UNTRAINED:
        model, categories = spec.build(1000), imagenet_categories()
    elif weights == CHECKPOINT:
        if checkpoint is None:
            raise CheckpointError("Choose a checkpoint file to load.")
        data = _read_bytes(checkpoint, "checkpoint")
        state = read_state_dict(data)
        n = _class_count(state, spec.classifier)
        model = load_state_dict_into(spec.build(n), state)
        categories = (
            parse_class_names(_read_bytes(class_names, "class names"), n)
            if class_names is not None
            else tuple(f"class {i}" for i in range(n))
        )
        weights_id = hashlib.sha256(data).hexdigest()[:16]
    else:
        raise ValueError(f"weights must be {PRETRAINED!r}, {UNTRAINED!r} or {CHECKPOINT!r}")
    dev = pick_device(device)
    model = model.to(dev).eval().requires_grad_(False)
    return Backbone(spec, model, categories, weights, dev, weights_id)


def _read_bytes(source: bytes | str | Path, what: str) -> bytes:
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise CheckpointError(f"Cannot read the {what} file {source}: {exc.strerror}") from exc
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"The {what} file is larger than {MAX_CHECKPOINT_BYTES >> 20} MiB.")
    return data


def read_state_dict(data: bytes) -> dict[str, torch.Tensor]:
    """A state dict from checkpoint bytes, unwrapping common containers and prefixes."""
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc).lower():  # refused for a code reference, or just garbage?
            raise CheckpointError("This is not a readable PyTorch checkpoint.") from exc
        raise CheckpointError(
            "This file needs pickled Python code to load (for example a whole model saved with "
            "torch.save(model)); CNN Lens does not run code from uploads. Save and upload "
            "model.state_dict() instead."
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"This is not a readable PyTorch checkpoint ({exc}).") from exc
    for key in _WRAPPER_KEYS:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError("The checkpoint holds no state dict (a mapping of names to tensors).")
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"The checkpoint entry {key!r} is not a named tensor.")
        for prefix in _PREFIXES:
            key = key.removeprefix(prefix)
        state[key] = value
    return state


def _class_count(state: Mapping[str, torch.Tensor], classifier: str) -> int:
    weight = state.get(f"{classifier}.weight")
    if weight is None or weight.ndim != 2:
        raise CheckpointError(
            f"The checkpoint has no classifier weight {classifier}.weight: is it for this "
            "architecture?"
        )
    return int(weight.shape[0])


def load_state_dict_into(model: nn.Module, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """``load_state_dict(strict=True)`` with the mismatches spelled out plainly."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)}, model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            shown = ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
            problems.append(f"{len(items)} {title}: {shown}")
    if problems:
        raise CheckpointError(
            "The checkpoint does not fit this architecture. " + "; ".join(problems) + "."
        )
    model.load_state_dict(state, strict=True)
    return model


def parse_class_names(data: bytes, count: int) -> tuple[str, ...]:
    """Class names from a text file (one per line) or JSON (a list, or a {index: name} object)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CheckpointError("The class-name file is not UTF-8 text.") from exc
    names: list[str]
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        if isinstance(parsed, list):
            names = [str(n) for n in parsed]
        elif isinstance(parsed, dict):
            try:
                index = {int(k): str(v) for k, v in parsed.items()}
            except ValueError as exc:
                raise CheckpointError("A JSON class-name object must map indices to names.") from exc
            if sorted(index) != list(range(len(index))):
                raise CheckpointError("A JSON class-name object must have the indices 0..n-1.")
            names = [index[i] for i in range(len(index))]
        else:
            raise CheckpointError("JSON class names must be a list or an {index: name} object.")
    if len(names) != count:
        raise CheckpointError(
            f"The class-name file has {len(names)} names but the checkpoint has {count} classes."
        )
    return tuple(names)
