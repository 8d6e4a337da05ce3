"""Speed of a segmenter's explanations (issue 21), on the offline demo segmenter and its
held-out composites, medians of interleaved runs:

- a region's Grad-CAM against its limit, one forward pass and one backward pass from the
  layer to the region's score (goal: within 1.10x);
- the Gallery's maps over 100 demo images (``explain_regions``, Grad-CAM of each image's
  worst region, in batches of 20) against the segmenter's batched forward + backward
  throughput on the same images (goal: at least 0.9x).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TQDM_DISABLE", "1")

from bench.bench_methods import paired_times


def main() -> None:
    import torch

    from explain import Region, explain, explain_regions
    from explain.core.regions import region_scores
    from explain.data import animals_on_photos
    from explain.methods.gradcam import activations_and_gradients
    from models import load_backbone

    segmenter = load_backbone("animals_segmenter", device="cpu")
    scenes = animals_on_photos(100, seed=2)
    scene = scenes[0]
    target = Region(int(scene.labels[0]), scene.masks[0])
    bound = region_scores(segmenter, target.for_image(scene.image.size, (320, 320)).input_mask,
                          target.label)
    layer = segmenter.spec.gradcam_layer

    def limit() -> None:  # the layer's maps and the gradient of the region's score to them
        activations_and_gradients(bound.model, segmenter.preprocess(scene.image),
                                  segmenter.layer(layer), [0], layer)

    def ours() -> None:
        explain(segmenter, scene.image, "gradcam", target=target)

    ours(), limit()
    mine, bound_time = paired_times(ours, limit, 21)
    print(f"region Grad-CAM {mine * 1e3:7.1f} ms, limit {bound_time * 1e3:7.1f} ms: "
          f"{mine / bound_time:.2f}x (goal <= 1.10)")

    batch = 20
    images = [s.image for s in scenes]
    regions = [Region(int(s.labels[0]), s.masks[0]) for s in scenes]
    inputs = torch.cat([segmenter.preprocess(i) for i in images])

    def forward_backward() -> None:
        for start in range(0, len(images), batch):
            x = inputs[start:start + batch].clone().requires_grad_(True)
            out = segmenter.model(x)[:, 1].sum()
            torch.autograd.grad(out, x)

    def gallery() -> None:
        for start in range(0, len(images), batch):
            explain_regions(segmenter, images[start:start + batch], "gradcam",
                            regions[start:start + batch])

    gallery(), forward_backward()
    mine, bound_time = paired_times(gallery, forward_backward, 3)
    print(f"Gallery maps, {len(images)} images: {len(images) / mine:6.1f} img/s, the "
          f"segmenter's forward + backward {len(images) / bound_time:6.1f} img/s: "
          f"{bound_time / mine:.2f}x its throughput (goal >= 0.9)")


if __name__ == "__main__":
    main()
