"""CNNs from timm (PyPI ``timm``): a curated set in the registry, and any other timm CNN by name
(``timm:<name>``), each with its preprocessing from timm's own configuration, its Grad-CAM layer
found from the model (the last feature map with a spatial extent), and CAM where it applies
(checked: the classifier's input must be the spatial mean of that feature map).

timm's pretrained weights come from a model hub. The loader looks in the local hub cache first;
only when the hub answers does it download, so an offline server says at once, and clearly,
what the user can do instead of retrying for a minute.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
from urllib.parse import urlsplit

import torch
from torch import nn

from .errors import UnknownBackbone, WeightsUnavailable
from .preprocess import _RESAMPLE, Preprocessing
from .registry import BackboneSpec, CamHead, Tokens

log = logging.getLogger("cnn_lens.models")
PREFIX = "timm:"
_NOT_PLAIN = ("its classifier does not read the plain average of the last feature maps (a "
              "normalisation or another layer comes between)")
# The curated set, written out so that importing the registry does not build four models;
# tests/models/test_timm.py checks each against what spec_for() reads off the model.
CURATED = {
    "seresnet50": dict(title="SE-ResNet-50 (timm)", classifier="fc", gradcam_layer="layer4",
                       cam=CamHead("layer4", "fc"), size=(224, 224),
                       blocks=("layer4", "layer3", "layer2", "layer1")),
    "convnext_tiny": dict(title="ConvNeXt-Tiny (timm)", classifier="head.fc",
                          gradcam_layer="norm_pre", cam=None, cam_reason=_NOT_PLAIN,
                          size=(224, 224), blocks=("norm_pre", "stages")),
    "regnety_008": dict(title="RegNetY-800MF (timm)", classifier="head.fc",
                        gradcam_layer="final_conv", cam=CamHead("final_conv", "head.fc"),
                        size=(224, 224), blocks=("final_conv", "s4", "s3", "s2", "s1")),
    "efficientnetv2_rw_s": dict(title="EfficientNetV2-S (timm)", classifier="classifier",
                                gradcam_layer="bn2", cam=CamHead("bn2", "classifier"),
                                size=(288, 288), blocks=("bn2", "blocks")),
}
_hub_lock = threading.Lock()


def is_timm_cnn(name: str) -> bool:
    try:
        import timm
    except ImportError:
        return False
    return name in timm.list_models()


def spec_for(name: str, title: str | None = None, registry_name: str | None = None
             ) -> BackboneSpec:
    """The spec of timm model ``name``, read off an untrained instance."""
    import timm

    if not is_timm_cnn(name):
        raise UnknownBackbone(f"timm has no model called {name!r}.")
    model = timm.create_model(name, pretrained=False).eval()
    config = timm.data.resolve_data_config({}, model=model)
    interpolation = config.get("interpolation", "bicubic")
    preprocessing = Preprocessing(
        size=tuple(config["input_size"][1:]), mean=tuple(config["mean"]),
        std=tuple(config["std"]),
        interpolation=interpolation if interpolation in _RESAMPLE else "bicubic")
    classifier = model.default_cfg.get("classifier") or "fc"
    common = dict(name=registry_name or f"{PREFIX}{name}", title=title or f"{name} (timm)",
                  build=_build(name), load_pretrained=lambda: _pretrained(name),
                  classifier=classifier, preprocessing=preprocessing)
    if getattr(model, "patch_embed", None) is not None:  # a vision transformer
        tokens, norms = _transformer(name, model)
        return BackboneSpec(gradcam_layer=norms[0], cam=None, cam_reason=_TRANSFORMER,
                            blocks=norms, tokens=tokens, **common)
    layer, cam, reason = _feature_layer(name, model, preprocessing.size, classifier)
    blocks = tuple(n for n, _ in model.named_children() if n.startswith(("layer", "stages", "s",
                                                                         "blocks")))
    return BackboneSpec(gradcam_layer=layer, cam=cam, cam_reason=reason,
                        blocks=(layer, *[b for b in blocks if b != layer]), **common)


_TRANSFORMER = ("a vision transformer's classifier reads its class token, or its tokens' average "
                "after a norm, not the plain average of feature maps")


def _transformer(name: str, model: nn.Module) -> tuple[Tokens, tuple[str, ...]]:
    """How a timm vision transformer's tokens become feature maps, and the layers offered for
    the CAM family, last first. ViT, DeiT, EVA, BEiT: each block's first norm (the input of its
    attention; the last block's own output reaches the class token only through the final norm,
    so its patch tokens get no gradient: pytorch-grad-cam's ``blocks[-1].norm1``). Swin: each
    block's second norm, (N, h * w, C) tokens (pytorch-grad-cam's
    ``layers[-1].blocks[-1].norm2``). Another layout is refused by name."""
    grid = getattr(model.patch_embed, "grid_size", None)
    names = [n for n, _ in model.named_modules()]
    norms = [n for n in names if re.fullmatch(r"blocks\.\d+\.norm1", n)] or \
        [n for n in names if re.fullmatch(r"layers\.\d+\.blocks\.\d+\.norm2", n)]
    if grid is None or not norms:
        raise UnknownBackbone(f"timm model {name!r} is a transformer whose tokens CNN Lens "
                              "cannot lay out on a patch grid (it reads ViT, DeiT, EVA, BEiT "
                              "and Swin): it has no spatial feature map to explain.")
    tokens = Tokens(grid=(int(grid[0]), int(grid[1])),
                    prefix=int(getattr(model, "num_prefix_tokens", 0) or 0),
                    channels_last=getattr(model, "output_fmt", "NCHW") == "NHWC")
    return tokens, tuple(reversed(norms))


def _feature_layer(name: str, model: nn.Module, size: tuple[int, int], classifier: str
                   ) -> tuple[str, CamHead | None, str]:
    """(Grad-CAM layer, CAM head or None, why not): the last module, in the order they run,
    whose output is a feature map larger than 1 x 1; CAM when the classifier reads exactly
    its spatial mean."""
    outputs: list[tuple[str, torch.Tensor]] = []
    modules = dict(model.named_modules())
    fc = modules.get(classifier)
    seen: dict[str, torch.Tensor] = {}
    hooks = [module.register_forward_hook(
        lambda _m, _i, out, name=name: outputs.append((name, out))
        if isinstance(out, torch.Tensor) and (out.ndim == 3 or (out.ndim == 4 and out.shape[-1] > 1))
        else None)
        for name, module in modules.items() if name]
    if fc is not None:
        hooks.append(fc.register_forward_hook(
            lambda _m, args, _o: seen.setdefault("input", args[0].detach())))
    try:
        with torch.inference_mode():
            model(torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0)))
    finally:
        for hook in hooks:
            hook.remove()
    if not outputs or outputs[-1][1].ndim == 3:  # no map, or tokens after the last one (Mixer)
        raise UnknownBackbone(f"timm model {name!r} has no spatial feature map near its "
                              "classifier (its last layers work on tokens CNN Lens cannot lay "
                              "out on a grid): CNN Lens cannot explain it.")
    layer, features = outputs[-1]
    if not isinstance(fc, nn.Linear) or "input" not in seen:
        return layer, None, "its classifier is not one linear layer"
    pooled = features.mean(dim=(2, 3))
    if pooled.shape == seen["input"].shape and torch.allclose(pooled, seen["input"], atol=1e-5):
        return layer, CamHead(features=layer, fc=classifier), ""
    return layer, None, _NOT_PLAIN


def _hub_answers(timeout: float = 3.0) -> bool:
    from huggingface_hub import constants

    host = urlsplit(constants.ENDPOINT).hostname
    try:
        with contextlib.closing(socket.create_connection((host, 443), timeout=timeout)):
            return True
    except OSError:
        return False


def _pretrained(name: str) -> nn.Module:
    import timm
    from huggingface_hub import constants

    with _hub_lock:  # the hub's offline switch is process-wide
        before = constants.HF_HUB_OFFLINE
        try:
            constants.HF_HUB_OFFLINE = True  # the local cache first: instant
            return timm.create_model(name, pretrained=True).eval()
        except Exception as cached_error:  # not in the cache, or damaged
            log.info("timm weights of %s not in the local cache: %s", name, cached_error)
        finally:
            constants.HF_HUB_OFFLINE = before
        if not _hub_answers():
            raise WeightsUnavailable(
                f"The ImageNet weights of {name} (timm) are not on this server and cannot be "
                "downloaded from here. Choose untrained weights, upload a checkpoint of this "
                "architecture, or use an offline backbone (EfficientNet-Lite0 or -Lite2). "
                "Whoever runs the server can put the weights in its model-hub cache.")
        try:
            return timm.create_model(name, pretrained=True).eval()
        except Exception as exc:
            log.warning("downloading the timm weights of %s failed: %s", name, exc)
            raise WeightsUnavailable(f"The ImageNet weights of {name} (timm) could not be "
                                     "downloaded; try again later, or choose untrained "
                                     "weights or a checkpoint.") from exc


def _build(name: str):
    def build(classes: int) -> nn.Module:
        import timm

        return timm.create_model(name, pretrained=False, num_classes=classes)

    return build


def curated_spec(name: str) -> BackboneSpec:
    info = dict(CURATED[name])
    height, width = info.pop("size")
    return BackboneSpec(name=name, build=_build(name), load_pretrained=lambda: _pretrained(name),
                        preprocessing=Preprocessing(size=(height, width),
                                                    interpolation="bicubic"), **info)


def register_curated(register) -> None:
    """Register the curated timm CNNs (when timm is installed)."""
    import importlib.util

    if importlib.util.find_spec("timm") is None:
        return
    for name in CURATED:
        register(curated_spec(name))
