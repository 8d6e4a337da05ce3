"""What comes from outside the app (a link, a file, a file's name) through the real pages:
shown as plain text, never as markup; a checkpoint's class names belong to its session; bad
files end in one clear message in the main area; one set of upload limits."""

from __future__ import annotations

import io
import json
import re
import tomllib
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from models import get_spec
from tests.app.helpers import EXPLAIN, app, captions, png, shown, texts
from ui import limits, links

ROOT = Path(__file__).resolve().parents[2]

HOSTILE = {
    "link": "[Session expired - click here to sign in again](https://example.com/login)",
    "image": "![x](https://example.com/p.png)",
    "html": "<img src=x onerror=alert(1)><a href='https://example.com'>a</a>",
    "javascript": "javascript:alert(document.cookie)",
    "markdown": "__class__ **bold** :red[red] $x^2$ https://example.com www.example.com",
    "control": "\x00\x1b[31m\r\n# heading\n- item\t|a|b|",
    # long, and the whole query string under Streamlit's 524,288 characters (which it ignores
    # whole past that) with every parameter carrying it
    "long": "A" * 5_000,
}


def markup_in(source: str) -> list[str]:
    """The markup a Markdown source would render: what is left of it once every escaped
    character is taken out (our own **bold** and #### headings are allowed)."""
    bare = re.sub(r"\\.", "", source)
    found = [m for m in ("](", "<", "__", "$", ":red[") if m in bare]
    # autolinks form on the text as it reads, escapes undone
    found += re.findall(r"(?i)https?://|www\.|\w@\w", shown(source))
    return found + (["newline"] if "\n" in bare.strip() else [])


def rendered(at) -> list[str]:
    """Every Markdown source on the page: messages, markdown, captions, image captions and
    widget labels."""
    sources = [e.value for kind in ("markdown", "info", "warning", "error", "success", "caption")
               for e in at.get(kind)]
    sources += [c for image in at.get("image") for c in image.captions]
    sources += [w.label for kind in ("selectbox", "radio", "slider", "number_input")
                for w in at.get(kind)]
    return sources


def assert_plain(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    for source in rendered(at):
        assert not markup_in(source), (markup_in(source), source[:300])
        assert "A" * 100 not in source, source[:200]  # a 5 kB value is cut, never shown whole
    for chart in at.get("plotly_chart"):  # plotly labels are HTML-escaped
        spec = chart.proto.spec
        assert "<a" not in spec and "<img" not in spec and "<b>" not in spec


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_values_in_every_link_parameter_show_as_plain_text(kind):
    value = HOSTILE[kind]
    params = {name: value for name in links.PARAMS}
    params[value[:40]] = "1"  # a hostile parameter name too
    at = app(EXPLAIN, **params)
    assert_plain(at)
    notes = " ".join(texts(at.info))
    for name in links.PARAMS:
        if name != "layer":  # a layer name may pass the name check and fail on the model
            assert f"{name} = “" in notes, name
    visible = value[:40] if kind != "control" else "# heading"
    if kind != "long":
        seen = notes.replace("\\", "").replace("\u200b", "")  # escapes, autolink breakers
        assert visible.split()[0].replace("\x00", "") in seen
    assert any(c.startswith("Grad-CAM for “Egyptian cat”") for c in captions(at))  # still works


def checkpoint_bytes(classes: int = 3, arch: str = "resnet18") -> bytes:
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.save(get_spec(arch).build(classes).state_dict(), buffer)
    return buffer.getvalue()


def with_checkpoint(data: bytes, names: bytes | None = None, file_name: str = "model.pt",
                    names_file: str = "names.txt"):
    at = app(EXPLAIN, backbone="resnet18")
    at.radio(key="weights_choice").set_value("checkpoint").run()
    at.file_uploader(key="checkpoint_file").upload(file_name, data)
    if names is not None:
        at.file_uploader(key="class_names_file").upload(names_file, names, "text/plain")
    at.run()
    return at


def chart_labels(at) -> list[str]:
    return json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["y"]


def test_a_checkpoints_class_names_are_its_sessions_own():
    data = checkpoint_bytes()
    first = with_checkpoint(data)  # names come after the checkpoint, as a user adds them
    assert all(label.startswith("class ") for label in chart_labels(first))
    first.file_uploader(key="class_names_file").upload("fruit.txt", b"cherry\nplum\npeach\n",
                                                       "text/plain").run()
    second = with_checkpoint(data, b"ant\nbee\ncat\n", names_file="insects.txt")
    for at, names in ((first, ("cherry", "plum", "peach")), (second, ("ant", "bee", "cat"))):
        at.run()
        assert not at.exception
        assert sorted(label.split(" (")[0] for label in chart_labels(at)) == sorted(names)
        options = at.selectbox(key="p_class").options
        assert options[1:] == [f"{i}: {n}" for i, n in enumerate(names)], options
        assert any(f"for “{n}”" in c for c in captions(at) for n in names)


def test_hostile_file_names_and_class_names_show_as_plain_text():
    names = "\n".join(HOSTILE[k][:150] for k in ("link", "html", "markdown")).encode()
    at = with_checkpoint(checkpoint_bytes(), names, file_name=HOSTILE["image"] + ".pt",
                         names_file=HOSTILE["link"] + ".txt")
    assert_plain(at)
    assert any("<img src=x" in label for label in at.selectbox(key="p_class").options)
    from explain.data.samples import sample_image

    at = app(EXPLAIN)
    at.radio(key="source").set_value("upload").run()
    at.file_uploader(key="image_file").upload(HOSTILE["html"] + ".png", png(sample_image("coffee")),
                                              "image/png").run()
    assert_plain(at)
    assert any(c.startswith("<img src=x onerror") for c in captions(at))

    archive = io.BytesIO()  # a dataset whose folder and file names are hostile
    with zipfile.ZipFile(archive, "w") as z:
        for folder in (HOSTILE["image"].replace("/", "_"), HOSTILE["markdown"]):
            for i in range(6):
                z.writestr(f"{folder}/{HOSTILE['link'].replace('/', '_')}{i}.png",
                           png(Image.new("RGB", (32, 32), (40 * i, 90, 200))))
    for page in ("pages/5_Embedding_map.py", "pages/7_Errors.py", "pages/6_Neighbours.py"):
        at = app(page, proj="pca")
        at.selectbox(key="p_dataset").set_value("zip").run()
        at.file_uploader(key="dataset_zip").upload(HOSTILE["html"] + ".zip", archive.getvalue(),
                                                   "application/zip").run()
        assert_plain(at)
        assert not at.error, texts(at.error)


@pytest.mark.parametrize("content", [b"hello", bytes(range(256)) * 40, b""])
def test_a_damaged_checkpoint_is_one_message_in_the_main_area(content):
    at = with_checkpoint(content or b"\x00")
    assert not at.exception
    main = texts(at.main.error)
    assert len(main) == 1 and "not a readable PyTorch checkpoint" in main[0], main
    assert "Something went wrong" not in " ".join(main)
    at.radio(key="weights_choice").set_value("untrained").run()  # the session goes on
    assert not at.exception and not at.error
    assert any(c.startswith("Grad-CAM for") for c in captions(at))


def test_missing_weights_and_a_bad_image_are_said_in_the_main_area(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    at = app(EXPLAIN, backbone="resnet50")
    assert not at.exception
    message = " ".join(texts(at.main.error))
    assert "ImageNet weights of resnet50 are not available" in message
    assert "resnet50-11ad3fa6.pth" in message and "untrained" in message
    for leak in ("urlopen", "Errno", str(tmp_path), "/hub/", "Traceback"):
        assert leak not in message, leak
    assert texts(at.sidebar.error) == []  # said once, in the main area

    at = app(EXPLAIN)
    at.radio(key="source").set_value("upload").run()
    jpeg = io.BytesIO()
    Image.new("RGB", (400, 300), (200, 30, 30)).save(jpeg, format="JPEG")
    at.file_uploader(key="image_file").upload("cut.jpg", jpeg.getvalue()[:600], "image/jpeg").run()
    message = " ".join(texts(at.main.error))
    assert "The image cut.jpg cannot be used: The image file is damaged or truncated" in message
    assert "(" not in message.split("truncated")[1]  # no raw exception text after it


def test_one_set_of_upload_limits():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == limits.upload_mb(limits.LARGEST_UPLOAD)
    readme = (ROOT / "README.md").read_text()
    for what, limit in limits.UPLOADS.items():
        assert f"{what}: up to {limits.size(limit)}" in readme, what
    assert f"{limits.IMAGE_PIXELS // 1_000_000} megapixels" in readme
    at = app(EXPLAIN)
    at.radio(key="source").set_value("upload").run()
    uploader = at.file_uploader(key="image_file")
    assert uploader.proto.max_upload_size_mb == 50 and "up to 50 MB" in shown(uploader.label)
    at.radio(key="weights_choice").set_value("checkpoint").run()
    uploader = at.file_uploader(key="checkpoint_file")
    assert uploader.proto.max_upload_size_mb == limits.upload_mb(limits.CHECKPOINT_BYTES)
    assert "up to 1 GB" in shown(uploader.label)
    for limit in limits.UPLOADS.values():  # the drop zone says the label's number
        assert dropzone_size(limits.upload_mb(limit) << 20) == limits.size(limit).replace(" ", "")


def dropzone_size(size: float, unit: str = "b") -> str:
    """What Streamlit's drop zone writes before "per file" (its frontend's size formatter,
    ``utils.*.js``: the next unit up once a value passes half of it, no decimals)."""
    units = ["gb", "mb", "kb", "b"]
    at = units.index(unit)
    if at and size > 1024 / 2:
        return dropzone_size(size / 1024, units[at - 1])
    return f"{size:.0f}{unit.upper()}"


@pytest.mark.parametrize("side", [8000, 12000])
def test_a_too_large_image_names_the_limit_and_its_size(side):
    big = io.BytesIO()
    Image.new("1", (side, side)).save(big, format="PNG")  # bilevel: a small file
    at = app(EXPLAIN)
    at.radio(key="source").set_value("upload").run()
    at.file_uploader(key="image_file").upload("big.png", big.getvalue(), "image/png").run()
    assert not at.exception
    message = " ".join(texts(at.main.error))
    assert f"{side}x{side} pixels ({side * side / 1e6:.0f} megapixels)" in message, message
    assert "accepts up to 50 megapixels" in message
    assert "damaged" not in message and "decompression bomb" not in message


def test_link_notes_appear_once_on_the_run_that_read_the_link():
    at = app(EXPLAIN, layer="__import__")
    notes = texts(at.info)
    assert any("layer = “__import__” does not fit this model" in n for n in notes), notes
    at.slider(key="p_alpha").set_value(0.7).run()  # an unrelated change: no note now
    assert not any("Ignored from the link" in n for n in texts(at.info))

    at = app(EXPLAIN, layer="_blocks.12")  # fits the default model
    assert not any("Ignored from the link" in n for n in texts(at.info))
    at.selectbox(key="p_backbone").set_value("resnet18").run()
    at.radio(key="weights_choice").set_value("untrained").run()
    for _ in range(2):  # the layer stops fitting: reset silently, on this run and the next
        assert not any("Ignored" in n for n in texts(at.info)), texts(at.info)
        assert at.selectbox(key="p_layer").value == "layer4"
        at.run()


def test_a_link_taken_on_a_checkpoint_says_it_cannot_carry_it():
    at = with_checkpoint(checkpoint_bytes())
    link = {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert link["weights"] == "checkpoint"
    opened = app(EXPLAIN, **link)
    assert not opened.exception
    assert opened.radio(key="weights_choice").value == "checkpoint"
    message = " ".join(texts(opened.main.info))
    assert "taken while viewing an uploaded checkpoint, which a link cannot carry" in message
    assert not captions(opened)  # no other model is shown in its place


def test_a_failed_model_choice_is_in_the_link_and_said_once(tmp_path, monkeypatch):
    """The address bar says what the page shows, a failed choice included: a copied link opens
    the same view (the same message), not the model before it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    at = app(EXPLAIN)
    at.selectbox(key="p_backbone").set_value("seresnet50").run()
    assert not at.exception
    said = texts(at.main.error)
    assert len(said) == 1 and "ImageNet weights of seresnet50 (timm) are not" in said[0]
    assert texts(at.sidebar.error) == []
    link = {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert link["backbone"] == "seresnet50" and link["weights"] == "pretrained"
    again = app(EXPLAIN, **link)
    assert texts(again.main.error) == said

    at.selectbox(key="p_backbone").set_value("resnet50").run()
    at.radio(key="weights_choice").set_value("untrained").run()
    assert at.query_params["weights"] in ("untrained", ["untrained"])
    at.radio(key="weights_choice").set_value("pretrained").run()
    assert "ImageNet weights of resnet50 are not available" in " ".join(texts(at.main.error))
    assert at.query_params["weights"] in ("pretrained", ["pretrained"])
    assert at.query_params["backbone"] in ("resnet50", ["resnet50"])
