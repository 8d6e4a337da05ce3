"""The Gallery's goals (issue 10), on the offline default model and Animal-MNIST:

1. A slice of 256 images explained with Grad-CAM (maps only, in batches of 16) against the raw
   batched forward+backward throughput of the same images (goal: >= 0.9x).
2. A slice as the Gallery runs it, scores included: 16 images with Grad-CAM, their maps, then
   every card's deletion and insertion curves and its random map's (4 x 11 forward passes per
   image), against the model's batched forward throughput on as many images (goal: the
   scores at >= 0.9x).
3. A gallery of 1,000 cards whose explanations exist: the page's first run (first page of cards
   on screen) and a page change, through the real page in AppTest (goals: < 2 s, < 0.5 s).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CNN_LENS_CACHE", tempfile.mkdtemp(prefix="cnn-lens-bench-"))
os.environ.setdefault("CNN_LENS_WARM_UMAP", "0")


def throughput() -> None:
    import torch

    from explain.data.datasets import bundled
    from explain.evaluate.slices import explain_slice
    from models import DEFAULT_BACKBONE, load_backbone

    backbone = load_backbone(DEFAULT_BACKBONE, device="cpu")
    dataset = bundled("animal_mnist")
    indices = list(range(256))
    images = [dataset.image(i) for i in indices]
    inputs = torch.cat([backbone.preprocess(image) for image in images])

    def raw() -> None:  # forward + backward of each image's top score, batches of 16
        for start in range(0, len(inputs), 16):
            x = inputs[start:start + 16].clone().requires_grad_(True)
            logits = backbone.model(x)
            top = logits.gather(1, logits.argmax(1, keepdim=True)).sum()
            torch.autograd.grad(top, x)

    layer = backbone.layer(backbone.spec.gradcam_layer)

    def to_layer() -> None:  # Grad-CAM's own limit: the backward pass stops at its layer
        held = {}

        def hook(module, args, output):
            held["a"] = output.detach().requires_grad_(True)
            return held["a"]

        for start in range(0, len(inputs), 16):
            handle = layer.register_forward_hook(hook)
            try:
                logits = backbone.model(inputs[start:start + 16])
                top = logits.gather(1, logits.argmax(1, keepdim=True)).sum()
                torch.autograd.grad(top, held["a"])
            finally:
                handle.remove()

    def ours() -> None:
        explain_slice(backbone, dataset, indices, "gradcam", batch_size=16, curves=False)

    raw(), to_layer(), ours()  # warm-up
    times = {"raw": [], "layer": [], "ours": []}
    for _ in range(3):
        for name, fn in (("raw", raw), ("layer", to_layer), ("ours", ours)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    r, lim, o = (statistics.median(times[k]) for k in ("raw", "layer", "ours"))
    print(f"slice of 256, Grad-CAM (decoding, maps, heatmaps included): {256 / o:.0f} images/s; "
          f"raw batched forward+backward to the input {256 / r:.0f} images/s (ratio {r / o:.2f}, "
          f"goal >= 0.9); forward+backward to the Grad-CAM layer {256 / lim:.0f} images/s "
          f"(ratio {lim / o:.2f})")


def slice_with_scores() -> None:
    import torch

    from explain.core.batching import learned_size
    from explain.data.datasets import bundled
    from explain.evaluate.slices import explain_slice, score_slice
    from models import DEFAULT_BACKBONE, load_backbone
    from ui.gallery import CURVE_STEPS

    backbone = load_backbone(DEFAULT_BACKBONE, device="cpu")
    dataset = bundled("animal_mnist")
    indices = list(range(16))
    passes = 16 * 4 * (CURVE_STEPS + 1)
    inputs = torch.cat([backbone.preprocess(dataset.image(i)) for i in indices])
    batch = inputs.repeat(passes // 16, 1, 1, 1)

    def forward(size: int) -> float:  # the model alone, on as many images, in batches
        start = time.perf_counter()
        with torch.inference_mode():
            for first in range(0, passes, size):
                backbone.model(batch[first:first + size])
        return time.perf_counter() - start

    maps = explain_slice(backbone, dataset, indices, "gradcam", steps=CURVE_STEPS, curves=False)
    score_slice(backbone, dataset, maps)  # warm-up, and the batch size measured
    times = {"maps": [], "scores": [], "forward": {2: [], 4: [], 8: [], 16: []}}
    for _ in range(5):
        start = time.perf_counter()
        maps = explain_slice(backbone, dataset, indices, "gradcam", steps=CURVE_STEPS,
                             curves=False)
        times["maps"].append(time.perf_counter() - start)
        start = time.perf_counter()
        score_slice(backbone, dataset, maps)
        times["scores"].append(time.perf_counter() - start)
        for size in (2, 4, 8, 16):
            times["forward"][size].append(forward(size))
    m, sc = statistics.median(times["maps"]), statistics.median(times["scores"])
    best = min(statistics.median(v) for v in times["forward"].values())
    chosen = learned_size(backbone.model, inputs.device, tuple(inputs.shape[1:]))
    same = statistics.median(times["forward"][chosen]) if chosen in times["forward"] else best
    print(f"slice of 16 with scores, as the Gallery runs it: maps {m:.2f} s (the cards appear), "
          f"scores {sc:.2f} s ({passes} forward passes: {passes / sc:.0f} images/s). The model's "
          f"batched forward on as many images: {passes / same:.0f} images/s at the batch size "
          f"the scores measured fastest ({chosen}): ratio {same / sc:.2f}, goal >= 0.9; "
          f"{passes / best:.0f} images/s at its best size here: ratio {best / sc:.2f}. "
          f"The whole slice {m + sc:.1f} s")


def gallery_pages() -> None:
    from streamlit.testing.v1 import AppTest

    from explain.data.datasets import bundled
    from explain.evaluate.slices import explain_slice
    from models import DEFAULT_BACKBONE
    from ui import gallery
    from ui.results import method_options, result_store
    from ui.view import View, model_cache

    backbone = model_cache().get(DEFAULT_BACKBONE)
    dataset = bundled("animal_mnist").subset(100)  # 1,000 images
    indices = list(range(len(dataset)))
    # the explanations exist (what a finished "Explain these images" leaves in the store)
    view = View(backbone, None, "", "")
    key = gallery.run_key(view, dataset, indices, "cam", method_options(view, "cam"))
    result_store().get(key, lambda: explain_slice(backbone, dataset, indices, "cam",
                                                  curves=False))
    def session(alpha: float) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
        at.query_params.update({"dataset": "animal_mnist", "per_class": "100", "slice": "all",
                                "method": "cam", "explain_count": "1000", "alpha": str(alpha)})
        at.switch_page("pages/9_Gallery.py")
        return at

    session(0.5).run()  # the features and predictions of the 1,000 images, computed once
    first = []
    for alpha in (0.3, 0.35, 0.4):  # a new session whose 24 card pictures are not drawn yet
        at = session(alpha)
        start = time.perf_counter()
        at.run()
        first.append(time.perf_counter() - start)
        assert any("Cards 1-24 of 1000." in c.value for c in at.caption), "no cards shown"
    paging = []
    for page in (2, 3, 4, 5, 6, 7, 8, 9, 10, 11):
        start = time.perf_counter()
        at.number_input(key="p_gpage").set_value(page).run()
        paging.append(time.perf_counter() - start)
    print(f"gallery page run with the explanations known: first page "
          f"{statistics.median(first):.2f} s (goal < 2), page change "
          f"{statistics.median(paging):.2f} s (goal < 0.5)")


if __name__ == "__main__":
    throughput()
    slice_with_scores()
    gallery_pages()
