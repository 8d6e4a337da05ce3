"""Snapshots of everything an explainer must leave as it found it."""

from __future__ import annotations

import torch
from torch import nn


def model_state(model: nn.Module) -> dict:
    """Everything an explainer must leave as it found it: flags, grads, hooks, buffers."""
    hooks = {
        name: tuple(len(getattr(m, attr)) for attr in (
            "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
        ))
        for name, m in model.named_modules()
    }
    return {
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "hooks": hooks,
        "buffers": [b.clone() for b in model.buffers()],
        "params": [p.detach().clone() for p in model.parameters()],
        "global_hooks": (len(nn.modules.module._global_forward_hooks),
                         len(nn.modules.module._global_forward_pre_hooks),
                         len(nn.modules.module._global_backward_hooks)),
    }


def assert_same_state(before: dict, after: dict) -> None:
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["hooks"] == before["hooks"]
    assert after["global_hooks"] == before["global_hooks"]
    for a, b in zip(before["grads"], after["grads"], strict=True):
        assert (a is None and b is None) or torch.equal(a, b)
    for key in ("buffers", "params"):
        for a, b in zip(before[key], after[key], strict=True):
            assert torch.equal(a, b), key
