"""Typed errors of the model zoo: each carries a message a user can act on."""


class ModelError(Exception):
    """Base class: a backbone could not be given to the caller. ``str(err)`` is the user message."""


class UnknownBackbone(ModelError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsUnavailable(ModelError):
    """Pretrained weights are neither cached on this machine nor downloadable."""


class CheckpointError(ModelError):
    """A user's checkpoint or class-name file cannot be used (and nothing of it was run)."""
