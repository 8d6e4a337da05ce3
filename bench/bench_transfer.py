"""Class pictures that transfer (issue 11): a picture made on EfficientNet-Lite0 (512 steps,
the default recipe) should be classified as its class by EfficientNet-Lite2, which never saw it.
The transfer rate over 20 fixed classes (goal >= 50%), beside plain gradient ascent (no
decorrelated Fourier image, no transforms) as the baseline, with fewer classes.

    python bench/bench_transfer.py [--classes 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CLASSES = [1, 9, 22, 76, 130, 145, 207, 291, 309, 323, 339, 417, 430, 504, 547, 779, 812, 937,
           950, 980]  # goldfish ... volcano: animals, objects, food, scenes


def plain_ascent(model, preprocessing, target: int, steps: int = 512):
    """Gradient ascent on the pixels themselves, no regularisation (the baseline)."""
    import torch

    pixels = torch.full((1, 3, *preprocessing.size), 0.5).requires_grad_(True)
    optimizer = torch.optim.Adam([pixels], lr=0.05)
    for _ in range(steps):
        score = model(preprocessing.normalize(pixels.clamp(0, 1)))[0, target]
        (grad,) = torch.autograd.grad(-score, pixels)
        pixels.grad = grad
        optimizer.step()
    return (pixels.detach()[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype("uint8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--baseline-classes", type=int, default=5)
    args = parser.parse_args()
    from PIL import Image

    from explain import visualize_class
    from models import load_backbone

    maker = load_backbone("efficientnet_lite0", device="cpu")
    judge = load_backbone("efficientnet_lite2", device="cpu")
    hits, seconds = 0, []
    for target in CLASSES[:args.classes]:
        start = time.perf_counter()
        picture = visualize_class(maker, target)
        seconds.append(time.perf_counter() - start)
        top = judge.predict(Image.fromarray(picture.image), k=1)[0]
        hits += top.index == target
        print(f"  {maker.categories[target]:22s} Lite2 says {top.name} ({top.probability:.0%})",
              flush=True)
    print(f"transfer rate Lite0 -> Lite2: {hits}/{args.classes} = {hits / args.classes:.0%} "
          f"(goal >= 50%), {sum(seconds) / len(seconds):.0f} s a picture (512 steps)")
    plain = 0
    for target in CLASSES[:args.baseline_classes]:
        image = plain_ascent(maker.model, maker.preprocessing, target)
        plain += judge.predict(Image.fromarray(image), k=1)[0].index == target
    print(f"plain gradient ascent: {plain}/{args.baseline_classes}")


if __name__ == "__main__":
    main()
