"""Speed of issue 11's and 18's methods against their own limits, on the offline default model and one
photo, medians of interleaved runs (goal: each within 1.10x), and Score-CAM against
pytorch-grad-cam's ScoreCAM for the same map (goal: at least 2x faster).

Every limit starts from the photo, as the method does (its resizing to the model's input is in
both). Limits: the Grad-CAM family, a forward pass and a backward pass to the layer; EigenCAM, a
forward pass (its SVD of a 49 x 1,280 matrix is part of the method); Score-CAM, its masked
forward passes in batches of 32 (one per channel that is not constant, plus one); Integrated
Gradients, ``steps`` forward+backward passes to the input in batches of 16; SmoothGrad over
saliency, ``samples`` forward+backward passes in batches of 8; Gradient x Input, one.
EigenGradCAM, a forward pass and a backward pass to the layer; the deconvnet and FullGrad, a
forward and a backward pass to the input; GradientSHAP, ``samples`` forward+backward passes in
batches of 16; AblationCAM, one forward pass per channel of the layer in batches of 32, plus one.
``--only=a,b`` measures those methods alone.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["TQDM_DISABLE"] = "1"  # pytorch-grad-cam's ScoreCAM draws a progress bar


def paired_times(first, second, runs: int) -> tuple[float, float]:
    """Median times of ``first`` and ``second`` run in turns (the order swapped each round), so
    that a slow spell of the machine falls on both."""
    times: tuple[list[float], list[float]] = ([], [])
    for run in range(runs):
        order = ((0, first), (1, second)) if run % 2 == 0 else ((1, second), (0, first))
        for slot, fn in order:
            start = time.perf_counter()
            fn()
            times[slot].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    import torch

    from explain import explain
    from explain.data.samples import sample_image
    from explain.methods.gradcam import activations_and_gradients
    from models import DEFAULT_BACKBONE, load_backbone

    backbone = load_backbone(DEFAULT_BACKBONE, device="cpu")
    model, image = backbone.model, sample_image("chelsea")
    x = backbone.preprocess(image)
    name = backbone.spec.gradcam_layer
    layer = backbone.layer(name)

    def forward(batch: torch.Tensor) -> None:
        with torch.inference_mode():
            model(batch)

    def to_layer() -> None:
        activations_and_gradients(model, backbone.preprocess(image), layer, None, name)

    def input_grads(count: int, batch: int) -> None:
        for start in range(0, count, batch):
            xs = x.repeat(min(batch, count - start), 1, 1, 1).requires_grad_(True)
            torch.autograd.grad(model(xs)[:, 0].sum(), xs)

    a, _, (cls,), _ = activations_and_gradients(model, x, layer, None, name, gradients=False)
    a = a[0]
    flat = a.flatten(1)
    varying = int((flat.amax(1) > flat.amin(1)).sum())
    masked = x.repeat(32, 1, 1, 1)

    def score_limit() -> None:
        forward(x)
        for start in range(0, varying, 32):
            forward(masked[:min(32, varying - start)])
        if varying < len(a):
            forward(x)

    def ablation_limit() -> None:  # one pass, then one per channel, in batches of 32
        forward(x)
        for start in range(0, len(a), 32):
            forward(masked[:min(32, len(a) - start)])

    cases = [
        ("gradcam_pp", {}, to_layer), ("xgradcam", {}, to_layer), ("hirescam", {}, to_layer),
        ("layercam", {}, to_layer), ("eigengradcam", {}, to_layer),
        ("deconvnet", {}, lambda: (forward(backbone.preprocess(image)), input_grads(1, 1))),
        ("fullgrad", {}, lambda: (backbone.preprocess(image), input_grads(1, 1))),
        ("gradientshap", {"samples": 16}, lambda: (forward(x), input_grads(16, 16))),
        ("eigencam", {}, lambda: forward(backbone.preprocess(image))),
        ("integrated_gradients", {"steps": 32}, lambda: input_grads(32, 16)),
        ("smoothgrad", {"samples": 16}, lambda: (forward(x), input_grads(16, 8))),
        ("input_x_gradient", {}, lambda: (forward(x), input_grads(1, 1))),
        ("scorecam", {}, score_limit),
        ("ablationcam", {}, ablation_limit),
    ]
    if "--quick" in sys.argv:  # no Score-CAM nor AblationCAM (a minute of forward passes each)
        cases = cases[:-2]
    only = [a.removeprefix("--only=") for a in sys.argv if a.startswith("--only=")]
    if only:
        cases = [c for c in cases if c[0] in only[0].split(",")]
    from explain.core.hooks import output_gradients
    from explain.methods.fullgrad import _biased

    biased = _biased(model)

    def hooked_grads() -> None:  # FullGrad's true floor: the hooks on every biased layer
        with output_gradients(biased, lambda layer, grad: None):
            input_grads(1, 1)

    for method, options, limit in cases:
        runs = 3 if method in ("scorecam", "ablationcam") else 21
        explain(backbone, image, method, **options), limit()  # warm-up
        ours, bound = paired_times(lambda m=method, o=options: explain(backbone, image, m, **o),
                                   limit, runs)
        print(f"{method:22s} {ours * 1e3:8.1f} ms, limit {bound * 1e3:8.1f} ms: "
              f"{ours / bound:.2f}x" + (" (goal <= 1.10)" if method != "fullgrad" else ""))
        if method == "fullgrad":  # against both limits (issue 29): its floor is the second
            hooked = lambda: (backbone.preprocess(image), hooked_grads())  # noqa: E731
            hooked()
            ours, floor = paired_times(lambda: explain(backbone, image, "fullgrad"), hooked,
                                       runs)
            hooks, plain = paired_times(hooked, limit, runs)
            print(f"{'':22s} {ours * 1e3:8.1f} ms, forward + backward with the hooks on its "
                  f"{len(biased)} biased layers {floor * 1e3:8.1f} ms: {ours / floor:.2f}x "
                  f"(goal <= 1.10); the hooks alone cost {hooks / plain:.2f}x the plain pass")
    print(f"  (Score-CAM: {varying} of {len(a)} channels vary on this photo)")
    if "--quick" in sys.argv:
        return
    try:
        from pytorch_grad_cam import ScoreCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError:
        print("pytorch-grad-cam is not installed (make setup-dev): no Score-CAM comparison")
        return
    xs = x.clone().requires_grad_(True)

    def theirs() -> None:
        with ScoreCAM(model=model, target_layers=[layer]) as cam:
            cam.batch_size = 32
            cam(input_tensor=xs, targets=[ClassifierOutputTarget(cls)])

    slow = median_time(theirs, 2)
    fast = median_time(lambda: explain(backbone, image, "scorecam"), 2)
    print(f"Score-CAM: ours {fast:.1f} s, pytorch-grad-cam {slow:.1f} s: {slow / fast:.1f}x "
          "faster (goal >= 2)")


if __name__ == "__main__":
    main()
