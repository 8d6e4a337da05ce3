"""Every method, one module per method or family, each registered with its record
(``explain.core.registry``). Importing this package registers them all."""

from explain.methods import (  # noqa: F401
    backward_rules,
    cam,
    channel_scores,
    fullgrad,
    gradcam,
    gradients,
    occlusion,
    paths,
    rise,
)
