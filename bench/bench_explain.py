"""Speed of the explain methods as ratios to their natural limits, measured in one run.

These machines are noisy: absolute times drift, ratios measured side by side hold. Each timing is
the median of interleaved repetitions. Goals (issue 2):
  Grad-CAM, CAM            <= 1.05 x one plain forward pass
  guided backprop, saliency <= 1.05 x one forward + backward to the input
  occlusion                <= 1.05 x (occluded images) x (per-image forward at the best batch size)
  class visualization step <= 1.05 x one forward + backward to the input (parameters frozen)
Run: make bench   (or .venv/bin/python bench/bench_explain.py [--quick])
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explain.methods.backward_rules import guided_backprop
from explain.methods.cam import cam
from explain.methods.gradcam import grad_cam
from explain.methods.gradients import saliency
from explain.methods.occlusion import occlusion, window_positions
from explain.visualize.class_visualization import class_visualization
from models import load_backbone


def timed(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each function, run interleaved so that drift hits all alike."""
    for fn in fns.values():  # warm-up
        fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def forward(model, x):
    with torch.inference_mode():
        return model(x)


def forward_backward(model, x, target=0):
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        score = model(x)[0, target]
    return torch.autograd.grad(score, x)


def captum_gradcam(model, layer, x):
    from captum.attr import LayerGradCam

    return LayerGradCam(model, layer).attribute(x, target=0, relu_attributions=True)


def report(rows: list[tuple[str, float, float]]) -> None:
    print(f"{'measure':58s} {'ratio':>7s} {'goal':>6s}")
    for name, ratio, goal in rows:
        flag = "" if ratio <= goal else "  (over)"
        print(f"{name:58s} {ratio:7.3f} {goal:6.2f}{flag}")


def bench_model(name: str, weights: str, repeats: int) -> list[tuple[str, float, float]]:
    b = load_backbone(name, weights)
    model, spec = b.model, b.spec
    x = torch.randn(1, 3, 224, 224, device=b.device)
    layer = b.layer(spec.gradcam_layer)
    head = spec.cam
    t = timed({
        "forward": lambda: forward(model, x),
        "gradcam": lambda: grad_cam(model, x, layer, 0)[0],
        "cam": lambda: cam(model, x, b.layer(head.features), b.layer(head.fc), 0)[0],
        "captum_gradcam": lambda: captum_gradcam(model, layer, x),
    }, repeats)
    rows = [
        (f"{name}: Grad-CAM / forward", t["gradcam"] / t["forward"], 1.05),
        (f"{name}: CAM / forward", t["cam"] / t["forward"], 1.05),
        (f"{name}: (Captum LayerGradCam / forward, for reference)",
         t["captum_gradcam"] / t["forward"], float("inf")),
    ]
    t = timed({
        "fwd_bwd": lambda: forward_backward(model, x),
        "guided": lambda: guided_backprop(model, x, 0)[0],
        "saliency": lambda: saliency(model, x, 0)[0],
    }, repeats)
    rows += [
        (f"{name}: guided backprop / forward+backward", t["guided"] / t["fwd_bwd"], 1.05),
        (f"{name}: saliency / forward+backward", t["saliency"] / t["fwd_bwd"], 1.05),
    ]
    # Occlusion against its limit: images x per-image forward time at the best batch size.
    per_image = {}
    for batch in (1, 2, 4, 8, 16, 32, 64):
        xb = x.repeat(batch, 1, 1, 1)
        per_image[batch] = timed({"f": lambda xb=xb: forward(model, xb)},
                                 max(2, repeats // 3))["f"] / batch
    best = min(per_image, key=per_image.__getitem__)
    window, stride = 56, 28
    count = len(window_positions(224, window, stride)) ** 2
    t = timed({"occ": lambda: occlusion(model, x, 0, window, stride)[0]}, max(2, repeats // 3))
    print(f"{name}: per-image forward by batch size (ms): "
          + ", ".join(f"{k}: {v * 1e3:.1f}" for k, v in per_image.items()) + f"; best {best}")
    rows.append((f"{name}: occlusion ({count} images) / limit at batch {best}",
                 t["occ"] / (count * per_image[best]), 1.05))
    # Class visualization: each step against a forward+backward to the input run right after
    # it (from the step's progress report), so that the machine's slow spells fall on both.
    # Five runs (five classes): one run's ratio moves by several % on a busy machine.
    ratios = [class_viz_step_ratio(model, b.preprocessing, x, target, max(24, 4 * repeats))
              for target in (1, 130, 309, 547, 980)]
    print(f"{name}: class visualization step / forward+backward, five runs: "
          + ", ".join(f"{r:.3f}" for r in ratios))
    rows.append((f"{name}: class visualization step / forward+backward (median of 5 runs)",
                 statistics.median(ratios), 1.05))
    return rows


def class_viz_step_ratio(model, preprocessing, x, target: int, steps: int) -> float:
    """Median seconds of a class visualization step over the median of a forward+backward
    pass to the input, each pass timed right after a step."""
    marks: list[tuple[float, float]] = []  # (the step's end, the pass's end)

    def progress(step: int, total: int) -> None:
        stepped = time.perf_counter()
        forward_backward(model, x)
        marks.append((stepped, time.perf_counter()))

    forward_backward(model, x)  # warm-up
    class_visualization(model, preprocessing, target, steps=steps, progress=progress)
    step_times = [stepped - before for (_, before), (stepped, _) in itertools.pairwise(marks)]
    pass_times = [done - stepped for stepped, done in marks[1:]]
    return statistics.median(step_times) / statistics.median(pass_times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    repeats = 5 if args.quick else 15
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, repeats {repeats}")
    rows = bench_model("resnet50", "untrained", repeats)
    rows += bench_model("efficientnet_lite0", "pretrained", repeats)
    report(rows)


if __name__ == "__main__":
    main()
