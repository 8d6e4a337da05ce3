"""Building backbones with their weights: pretrained, untrained, or a user's checkpoint.

A checkpoint is untrusted bytes. It is read with ``torch.load(..., weights_only=True)`` only, so a
file that needs pickled code is refused before any of it runs, and only after its container was
checked (a zip of bounded size and entry count: no zip bomb reaches the reader). Whatever is wrong
with a file (empty, truncated, random bytes, another architecture, wrong dtypes or shapes, NaN
weights, too large) ends in one ``CheckpointError`` whose message says what to do.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
import torchvision
from torch import nn

from .backbone import CHECKPOINT, PRETRAINED, UNTRAINED, Backbone
from .device import pick_device
from .errors import CheckpointError
from .registry import get_spec

DETECTION = "detection"
SEGMENTATION = "segmentation"

# VGG-16's 528 MB state dict fits. 1 GB, not less: Streamlit's drop zone rounds any limit above
# 512 MB to "1GB per file", and a limit is said one way only
MAX_CHECKPOINT_BYTES = 1 << 30
MAX_CLASS_NAMES_BYTES = 1 << 20
MAX_CLASS_NAME = 200  # characters
MAX_ENTRIES = 20_000  # records in the checkpoint's zip (a large state dict has about 1,000)
_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."  # torch.save before the zip format
log = logging.getLogger("cnn_lens.models")
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
        model, categories = spec.load_pretrained(), spec.categories or imagenet_categories()
    elif weights == UNTRAINED:
        # seeded: the same untrained model every time it is loaded, so results cached for it
        # (keyed by its identity) stay right after the model cache drops and reloads it
        categories = spec.categories or imagenet_categories()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = spec.build(len(categories) - (spec.task == DETECTION))
    elif weights == CHECKPOINT:
        if checkpoint is None:
            raise CheckpointError("Choose a checkpoint file to load.")
        data = _read_bytes(checkpoint, "checkpoint", MAX_CHECKPOINT_BYTES)
        state = read_state_dict(data)
        if spec.prepare_state is not None:  # e.g. a training-only head dropped
            state = spec.prepare_state(state)
        n = spec.classes_of(state) if spec.classes_of else _class_count(state, spec.classifier)
        model = load_state_dict_into(spec.build(n), state)
        categories = (
            parse_class_names(_read_bytes(class_names, "class names", MAX_CLASS_NAMES_BYTES), n)
            if class_names is not None
            else tuple(f"class {i}" for i in range(1 if spec.task == DETECTION else 0,
                                                   n + (spec.task == DETECTION)))
        )
        if spec.task == SEGMENTATION and class_names is None:  # class 0 is the background
            categories = ("background", *categories[1:])
        if spec.task == DETECTION:  # torchvision's numbering: 0 is the background
            categories = ("background", *categories)
        weights_id = hashlib.sha256(data).hexdigest()[:16]
    else:
        raise ValueError(f"weights must be {PRETRAINED!r}, {UNTRAINED!r} or {CHECKPOINT!r}")
    dev = pick_device(device)
    model = model.to(dev).eval().requires_grad_(False)
    if weights == CHECKPOINT:
        _check_outputs(model, spec, dev)
    return Backbone(spec, model, categories, weights, dev, weights_id)


def _check_outputs(model: nn.Module, spec, device: torch.device) -> None:
    """Finite weights can still make a model output NaN (a negative BatchNorm variance, weights
    that overflow): one forward pass on a grey image tells before anyone explains with it."""
    height, width = spec.preprocessing.size
    grey = torch.zeros(1, 3, height, width, device=device)
    with torch.inference_mode():
        if spec.task == DETECTION:
            outputs = [t for found in model.find(grey) for t in (found.boxes, found.scores)]
        else:
            logits = model(grey)
            outputs = logits if isinstance(logits, tuple | list) else (logits,)
    if not all(bool(torch.isfinite(o).all()) for o in outputs):
        raise CheckpointError("The checkpoint's weights make the model output NaN or infinite "
                              "values (a damaged file, or a model that had diverged).")


def _mb(count: int) -> str:
    return f"{count / (1 << 20):.1f} MB" if count >= 1 << 20 else f"{count} bytes"


def _read_bytes(source: bytes | str | Path, what: str, limit: int) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    else:
        try:
            size = Path(source).stat().st_size
            if size > limit:
                raise CheckpointError(f"The {what} file is {_mb(size)}; the limit is {_mb(limit)}.")
            data = Path(source).read_bytes()
        except OSError as exc:
            raise CheckpointError(f"Cannot read the {what} file {source}: {exc.strerror}") from exc
    if not data:
        raise CheckpointError(f"The {what} file is empty.")
    if len(data) > limit:
        raise CheckpointError(f"The {what} file is {_mb(len(data))}; the limit is {_mb(limit)}.")
    return data


_NOT_A_CHECKPOINT = ("This file is not a readable PyTorch checkpoint (it is damaged, truncated or "
                     "of another kind). Save one with torch.save(model.state_dict(), path).")


def _check_container(data: bytes) -> None:
    """Before ``torch.load``: the bytes are a zip (torch.save's format since PyTorch 1.6) whose
    entries, once read, fit the size limit. The reader allocates what an entry declares, so a
    zip bomb (or an entry that claims gigabytes) is refused here, unread."""
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"The checkpoint file is {_mb(len(data))}; the limit is "
                              f"{_mb(MAX_CHECKPOINT_BYTES)}.")
    if data.startswith(_LEGACY_MAGIC):
        raise CheckpointError("This checkpoint is in PyTorch's legacy format (before 1.6). Load it "
                              "and save it again with a current PyTorch.")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except Exception as exc:  # zipfile fails in many ways on crafted central directories
        log.info("checkpoint refused: not a zip (%s: %s)", type(exc).__name__, exc)
        raise CheckpointError(_NOT_A_CHECKPOINT) from None
    if len(entries) > MAX_ENTRIES:
        raise CheckpointError(f"The checkpoint holds {len(entries)} records; a state dict holds "
                              f"at most a few thousand (limit {MAX_ENTRIES}).")
    unpacked = sum(e.file_size for e in entries)
    if unpacked > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"The checkpoint unpacks to {_mb(unpacked)}; the limit is "
                              f"{_mb(MAX_CHECKPOINT_BYTES)}.")


def read_state_dict(data: bytes) -> dict[str, torch.Tensor]:
    """A state dict from checkpoint bytes, unwrapping common containers and prefixes.

    Every tensor is a dense, finite tensor of a real number type; any other content, and any
    failure to parse, is a ``CheckpointError``."""
    _check_container(data)
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        log.info("checkpoint refused by the weights-only unpickler: %s", exc)
        if "global" not in str(exc).lower():  # refused for a code reference, or just garbage?
            raise CheckpointError(_NOT_A_CHECKPOINT) from None
        raise CheckpointError(
            "This file needs pickled Python code to load (for example a whole model saved with "
            "torch.save(model)); CNN Lens does not run code from uploads. Save and upload "
            "model.state_dict() instead."
        ) from None
    except Exception as exc:  # the reader fails in many ways on damaged bytes (Index/Key/...)
        log.info("checkpoint refused: %s: %s", type(exc).__name__, exc)
        raise CheckpointError(_NOT_A_CHECKPOINT) from None
    for key in _WRAPPER_KEYS:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError("The checkpoint holds no state dict (a mapping of names to tensors).")
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"The checkpoint entry {_short(key)} is not a named tensor.")
        if value.layout != torch.strided or value.is_quantized or value.is_meta:
            raise CheckpointError(f"The checkpoint entry {_short(key)} is not a plain dense tensor.")
        if value.is_complex():
            raise CheckpointError(f"The checkpoint entry {_short(key)} holds complex numbers.")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"The checkpoint entry {_short(key)} holds NaN or infinite "
                                  "values: the model it was saved from had diverged.")
        for prefix in _PREFIXES:
            key = key.removeprefix(prefix)
        state[key] = value
    return state


def _short(key: object) -> str:
    text = repr(key)
    return text if len(text) <= 80 else text[:79] + "…"


def _class_count(state: Mapping[str, torch.Tensor], classifier: str) -> int:
    """The classes of a checkpoint: the rows of its classifier's weight (a linear layer's, or
    a detector's class convolution's)."""
    weight = state.get(f"{classifier}.weight")
    if weight is None or weight.ndim not in (2, 4) or weight.shape[0] < 1:
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
    dtypes = [  # half or bfloat16 weights load into float32; an integer weight does not
        f"{k}: checkpoint {state[k].dtype}, model {v.dtype}"
        for k, v in expected.items()
        if k in state and not _same_kind(state[k].dtype, v.dtype)
    ]
    unexpected = [_short(k) for k in unexpected]
    problems = []
    for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes),
                         ("wrong type", dtypes)):
        if items:
            shown = ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
            problems.append(f"{len(items)} {title}: {shown}")
    if problems:
        raise CheckpointError(
            "The checkpoint does not fit this architecture. " + "; ".join(problems) + "."
        )
    model.load_state_dict(state, strict=True)
    return model


def _same_kind(saved: torch.dtype, expected: torch.dtype) -> bool:
    """Whether ``saved`` values can stand for ``expected`` ones (float for float, integer for
    integer, bool for bool) without losing their meaning."""
    def kind(dtype: torch.dtype) -> str:
        return "bool" if dtype == torch.bool else "float" if dtype.is_floating_point else "int"

    return kind(saved) == kind(expected)


def parse_class_names(data: bytes, count: int) -> tuple[str, ...]:
    """Class names from a text file (one per line) or JSON (a list, or a {index: name} object)."""
    if len(data) > MAX_CLASS_NAMES_BYTES:
        raise CheckpointError(f"The class-name file is {_mb(len(data))}; the limit is "
                              f"{_mb(MAX_CLASS_NAMES_BYTES)}.")
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
    names = [" ".join(n.split()) for n in names]  # one line each: no control characters
    if not all(names) or max(map(len, names)) > MAX_CLASS_NAME:
        raise CheckpointError(f"Every class name must be 1 to {MAX_CLASS_NAME} characters long.")
    return tuple(names)
