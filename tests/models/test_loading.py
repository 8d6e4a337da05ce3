import io
import json
from pathlib import Path

import pytest
import torch

from explain.data.samples import SAMPLES, sample_image
from models import (
    CheckpointError,
    UnknownBackbone,
    WeightsUnavailable,
    load_backbone,
    parse_class_names,
    pick_device,
)


def test_offline_default_knows_the_photos(lite, chelsea, coffee):
    top = lite.predict(chelsea, k=5)
    assert top[0].index in SAMPLES["chelsea"].classes and top[0].name == "Egyptian cat"
    assert top[0].probability > 0.5
    assert sum(p.probability for p in top) <= 1.0 + 1e-6
    espresso = lite.predict(coffee, k=1)[0]
    assert espresso.name == "espresso" and espresso.probability > 0.85
    assert not lite.untrained and lite.weights == "pretrained"


def test_torchvision_weights_missing_is_one_clear_error(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsUnavailable) as info:
        load_backbone("resnet18")
    message = str(info.value)
    expected_folder = tmp_path / "hub" / "checkpoints"
    assert "resnet18-f37072fd.pth" in message and "not on this server" in message
    assert "untrained" in message and "README" in message
    # the server's path and the raw exception go to the log, not to the user
    assert str(tmp_path) not in message and "Errno" not in message and "urlopen" not in message
    assert str(expected_folder) in caplog.text


def test_damaged_cached_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "resnet18-f37072fd.pth").write_bytes(b"half a download")
    with pytest.raises(WeightsUnavailable, match="damaged"):
        load_backbone("resnet18")


def test_unknown_backbone():
    with pytest.raises(UnknownBackbone):
        load_backbone("resnet9000")
    with pytest.raises(ValueError, match="weights must be"):
        load_backbone("resnet18", "imagenet")


def checkpoint_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def seven_classes():
    torch.manual_seed(0)
    return load_backbone("resnet18", "untrained").spec.build(7).state_dict()


def test_own_checkpoint_with_names(seven_classes, chelsea, tmp_path):
    names = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu"]
    path = tmp_path / "model.pt"
    path.write_bytes(checkpoint_bytes(seven_classes))
    for class_file in ("\n".join(names).encode(), json.dumps(names).encode(),
                       json.dumps({str(i): n for i, n in enumerate(names)}).encode()):
        backbone = load_backbone("resnet18", "checkpoint", checkpoint=path, class_names=class_file)
        assert backbone.categories == tuple(names) and backbone.num_classes == 7
        assert backbone.weights == "checkpoint" and len(backbone.weights_id) == 16
        top = backbone.predict(chelsea, k=3)
        assert len(top) == 3 and {p.name for p in top} <= set(names)
    expected = torch.nn.functional.softmax(
        backbone.model(backbone.preprocess(chelsea)), 1)[0].max()
    assert top[0].probability == pytest.approx(float(expected))


def test_wrapped_and_prefixed_checkpoint(seven_classes):
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in seven_classes.items()}}
    backbone = load_backbone("resnet18", "checkpoint", checkpoint=checkpoint_bytes(wrapped))
    assert backbone.categories[6] == "class 6"
    torch.testing.assert_close(backbone.model.fc.weight, seven_classes["fc.weight"])


def test_mismatches_are_spelled_out(seven_classes):
    with pytest.raises(CheckpointError, match=r"does not fit.*missing.*layer1\.0\.conv3"):
        load_backbone("resnet50", "checkpoint", checkpoint=checkpoint_bytes(seven_classes))
    broken = dict(seven_classes)
    broken["layer1.0.conv1.weight"] = torch.zeros(3, 3)
    del broken["bn1.bias"]
    with pytest.raises(CheckpointError, match=r"1 missing: bn1\.bias; 1 wrong shape: layer1\.0"):
        load_backbone("resnet18", "checkpoint", checkpoint=checkpoint_bytes(broken))
    with pytest.raises(CheckpointError, match="no classifier weight"):
        load_backbone("densenet121", "checkpoint", checkpoint=checkpoint_bytes(seven_classes))
    with pytest.raises(CheckpointError, match="3 names but the checkpoint has 7"):
        load_backbone("resnet18", "checkpoint", checkpoint=checkpoint_bytes(seven_classes),
                      class_names=b"a\nb\nc\n")


class Payload:
    """Unpickling this would create a file: proof that code from a checkpoint ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "ran.txt"
    data = checkpoint_bytes({"fc.weight": torch.zeros(2, 512), "evil": Payload(str(marker))})
    with pytest.raises(CheckpointError, match="pickled Python code"):
        load_backbone("resnet18", "checkpoint", checkpoint=data)
    assert not marker.exists()
    whole_model = checkpoint_bytes(torch.nn.Linear(2, 2))
    with pytest.raises(CheckpointError, match="pickled Python code"):
        load_backbone("resnet18", "checkpoint", checkpoint=whole_model)


def test_garbage_and_missing_files(tmp_path):
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_backbone("resnet18", "checkpoint", checkpoint=b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="Cannot read"):
        load_backbone("resnet18", "checkpoint", checkpoint=tmp_path / "none.pt")
    with pytest.raises(CheckpointError, match="no state dict"):
        load_backbone("resnet18", "checkpoint", checkpoint=checkpoint_bytes([1, 2]))
    with pytest.raises(CheckpointError, match="Choose a checkpoint"):
        load_backbone("resnet18", "checkpoint")


def test_class_name_formats():
    assert parse_class_names(b"\xef\xbb\xbfa\n\n b \n", 2) == ("a", "b")
    with pytest.raises(CheckpointError, match="indices 0..n-1"):
        parse_class_names(b'{"1": "a", "2": "b"}', 2)
    with pytest.raises(CheckpointError, match="UTF-8"):
        parse_class_names(b"\xff\xfe\x00", 1)


def test_device_choice(monkeypatch):
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    monkeypatch.delenv("CNN_LENS_DEVICE", raising=False)
    if not (torch.backends.mps.is_available()):
        assert pick_device().type == expected
    assert pick_device("cpu").type == "cpu"
    monkeypatch.setenv("CNN_LENS_DEVICE", "cpu")
    assert pick_device().type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")


def test_samples_are_real_photos():
    for sample_id, sample in SAMPLES.items():
        image = sample_image(sample_id)
        assert image.mode == "RGB" and min(image.size) >= 300, sample_id
        if sample.box is not None:
            left, top, right, bottom = sample.box
            assert 0 <= left < right <= image.width and 0 <= top < bottom <= image.height
