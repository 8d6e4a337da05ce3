"""Adapters: a torchvision model behind the interface CNN Lens reads (a detector's ``find``, a
segmenter's logits), as it is."""

from __future__ import annotations

from torch import nn


class Adapter(nn.Module):
    """A model held in ``net`` whose modules, their names and its state dict are this
    module's: an adapter adds an interface (``find``, logits) and nothing to the model, so a
    layer is named as the model names it and the model's own checkpoints load unchanged."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        return self.net.named_modules(memo, prefix, remove_duplicate)

    def state_dict(self, *args, **kwargs):
        return self.net.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.net.load_state_dict(state_dict, strict=strict, assign=assign)
