"""Hostile and damaged checkpoints: every file a user can upload ends in one CheckpointError or
a valid model, never another exception, and no code in any of them runs."""

from __future__ import annotations

import io
import os
import pickle
import random
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from models import CheckpointError, get_spec, load_backbone
from models.loading import MAX_CHECKPOINT_BYTES

ARCH = "efficientnet_lite0"  # the smallest registered architecture: fast to load many times


def saved(obj, **kwargs) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def real() -> bytes:
    """A real checkpoint: EfficientNet-Lite0 with 3 classes."""
    torch.manual_seed(0)
    return saved(get_spec(ARCH).build(3).state_dict())


def load(data: bytes | Path, names: bytes | None = None):
    """What the app does with an upload: the result is a model or a CheckpointError."""
    try:
        backbone = load_backbone(ARCH, "checkpoint", device="cpu", checkpoint=data,
                                 class_names=names)
    except CheckpointError as exc:
        assert str(exc) and "Traceback" not in str(exc)
        return exc
    with torch.inference_mode():
        logits = backbone.model(torch.zeros(1, 3, 64, 64))
    assert logits.shape == (1, backbone.num_classes) and torch.isfinite(logits).all()
    return backbone


class Run:
    """A pickled call that leaves a marker file if it ever runs."""

    def __init__(self, call, *args) -> None:
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def code_payloads(marker: Path) -> list[bytes]:
    """Checkpoints whose unpickling would run code: the whole zip container with a code
    reference inside, and raw pickles of several protocols."""
    calls = [Run(os.system, f"touch {marker}"), Run(exec, f"open({str(marker)!r}, 'w')"),
             Run(Path.write_text, marker, "ran"), Run(eval, f"open({str(marker)!r}, 'w')")]
    files = []
    for call in calls:
        files.append(saved({"_fc.weight": torch.zeros(3, 1280), "x": call}))
        files.append(saved(call))
        files += [pickle.dumps({"state_dict": call}, protocol=p) for p in (0, 2, 4)]
    return files


def zip_bomb(declared_small: bool) -> bytes:
    """The torch zip layout whose one tensor record inflates to 96 MB past the limit; with
    ``declared_small`` its header also lies about the size."""
    buffer = io.BytesIO()
    real_zip = zipfile.ZipFile(io.BytesIO(saved({"_fc.weight": torch.zeros(3, 1280)})))
    with zipfile.ZipFile(buffer, "w") as out:
        for info in real_zip.infolist():
            if "/data/" in info.filename:
                bomb = zipfile.ZipInfo(info.filename)
                bomb.compress_type = zipfile.ZIP_DEFLATED
                with out.open(bomb, "w", force_zip64=True) as record:
                    chunk = bytes(1 << 24)
                    for _ in range((MAX_CHECKPOINT_BYTES >> 24) + 6):
                        record.write(chunk)
            else:
                out.writestr(info.filename, real_zip.read(info))
    data = bytearray(buffer.getvalue())
    if declared_small:  # rewrite every zip64 uncompressed size to 1 kB
        at = data.find(b"\x01\x00\x1c\x00")
        while at != -1:
            data[at + 4:at + 12] = struct.pack("<Q", 1024)
            at = data.find(b"\x01\x00\x1c\x00", at + 1)
    return bytes(data)


def structural_spans(data: bytes) -> list[tuple[int, int]]:
    """Where a checkpoint's structure lives: the pickle record, the small records and every
    zip header (tensor data is the rest)."""
    spans = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            start = info.header_offset
            body = start + 30 + len(info.filename) + len(info.extra)
            end = body + (info.compress_size if "/data/" not in info.filename else 0)
            spans.append((start, end))
    spans.append((data.rfind(b"PK\x01\x02") - 4096, len(data)))  # central directory
    return [(max(0, a), b) for a, b in spans]


def test_fuzzed_and_crafted_checkpoints_end_in_checkpoint_error_or_a_model(real, tmp_path):
    marker = tmp_path / "code-ran"
    rng = random.Random(20261126)
    files: list[bytes] = []
    for _ in range(140):  # random bytes, some behind a zip or pickle magic
        body = rng.randbytes(rng.choice((1, 5, 64, 1000, 70_000)))
        files.append(rng.choice((b"", b"PK\x03\x04", b"\x80\x02", b"\x80\x04\x95")) + body)
    for _ in range(40):  # truncations
        files.append(real[:rng.randrange(len(real))])
    spans = structural_spans(real)
    for count in range(100):  # flipped bytes: most in the structure, some in tensor data
        data = bytearray(real)
        for _ in range(rng.choice((1, 1, 2, 8))):
            if count < 80:
                start, end = rng.choice(spans)
                at = rng.randrange(start, min(end, len(data)))
            else:
                at = rng.randrange(len(data))
            data[at] ^= 1 << rng.randrange(8)
        files.append(bytes(data))
    files += code_payloads(marker)
    assert len(files) >= 300

    outcomes = {"error": 0, "model": 0}
    for data in files:
        result = load(data)
        outcomes["error" if isinstance(result, CheckpointError) else "model"] += 1
    assert not marker.exists(), "code in a checkpoint ran"
    assert outcomes["error"] > 200 and outcomes["model"] > 10, outcomes  # both paths taken


@pytest.mark.parametrize("kind", ["honest", "lying"])
def test_a_zip_bomb_is_refused(kind):
    data = zip_bomb(declared_small=kind == "lying")
    assert len(data) < 5 << 20
    result = load(data)
    assert isinstance(result, CheckpointError)
    if kind == "honest":
        limit = MAX_CHECKPOINT_BYTES >> 20
        assert f"unpacks to {limit + 96}.0 MB; the limit is {limit}.0 MB" in str(result)


def test_each_kind_of_bad_file_has_its_own_message(real, tmp_path):
    state = torch.load(io.BytesIO(real), weights_only=True)
    cases = {
        b"": "empty",
        b"hello": "not a readable PyTorch checkpoint",
        saved(state, _use_new_zipfile_serialization=False): "legacy format",
        saved({k: v for k, v in state.items() if k != "_fc.bias"}): "1 missing: _fc.bias",
        saved({**state, "_fc.weight": torch.full((3, 1280), float("nan"))}): "NaN or infinite",
        saved({**state, "_fc.weight": torch.zeros(3, 1280, dtype=torch.int64)}): "wrong type",
        saved({**state, "_fc.weight": torch.zeros(3, 7)}): "wrong shape",
        saved({**state, "_fc.weight": torch.zeros(3, 1280, dtype=torch.complex64)}): "complex",
        saved({**state, "_fc.weight": torch.zeros(3, 1280).to_sparse()}): "plain dense",
        saved(get_spec("resnet18").build(3).state_dict()): "no classifier weight _fc.weight",
        saved({"_fc.weight": torch.zeros(0, 1280)}): "no classifier weight",
    }
    for data, message in cases.items():
        result = load(data)
        assert isinstance(result, CheckpointError), message
        assert message in str(result), (message, str(result))
    wrong_count = load(real, b"one\ntwo\n")
    assert "2 names but the checkpoint has 3 classes" in str(wrong_count)
    too_long = load(real, ("a\nb\n" + "c" * 500).encode())
    assert "1 to 200 characters" in str(too_long)
    named = load(real, b"cherry\n<b>bold</b>\n[x](https://example.com)\n")
    assert named.categories == ("cherry", "<b>bold</b>", "[x](https://example.com)")


def test_a_file_over_the_limit_is_refused_before_it_is_read(tmp_path):
    huge = tmp_path / "huge.pt"
    with huge.open("wb") as f:  # 2 GB, sparse: nothing is written to disk
        f.truncate(2 << 30)
    result = load(huge)
    assert isinstance(result, CheckpointError)
    assert f"is 2048.0 MB; the limit is {MAX_CHECKPOINT_BYTES >> 20}.0 MB" in str(result)
