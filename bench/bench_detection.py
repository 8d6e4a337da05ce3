"""Speed of a detector's explanations (issue 20), on the offline demo detector and one of its
composites, medians of interleaved runs:

- a box's Grad-CAM against its limit, one forward pass and one backward pass from the layer to
  the box's score (goal: within 1.10x); k boxes' (``explain_boxes``, at one layer) against one
  forward pass and k backward passes from it (goal: within 1.10x);
- D-RISE with N masks against the detector's batched forward throughput on N images (goal:
  at least 0.9x), both in batches of 16;
- whether D-RISE's map (as drawn: the masks' weights centred on their mean) says more than
  chance at the default mask count: over held-out demo scenes, the share of each detected
  animal's map inside its true box against the box's share of the image (a uniform map's),
  with the raw map's beside it, and the time a box takes.
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

    from explain import Box, explain
    from explain.core.boxes import box_scores
    from explain.data import animals_on_photos
    from explain.methods.gradcam import activations_and_gradients
    from models import load_backbone

    detector = load_backbone("animals_detector", device="cpu")
    composite = animals_on_photos(1, seed=7)[0]
    image = composite.image
    found = detector.detect(image)
    if not found:
        raise SystemExit("the demo detector finds nothing on the bench's composite")
    target = Box(found[0].box, found[0].label)
    bound = box_scores(detector, target.for_image(image.size, (320, 320)).input_box,
                       found[0].label)
    layer = bound.spec.gradcam_layer  # the box's level's head, as the method reads by default

    def limit() -> None:  # the layer's maps and the gradient of the box's score to them
        activations_and_gradients(bound.model, detector.preprocess(image), detector.layer(layer),
                                  [0], layer)

    def ours() -> None:
        explain(detector, image, "gradcam", target=target)

    ours(), limit()
    mine, bound_time = paired_times(ours, limit, 21)
    print(f"box Grad-CAM {mine * 1e3:7.1f} ms, limit {bound_time * 1e3:7.1f} ms: "
          f"{mine / bound_time:.2f}x (goal <= 1.10)")

    # k boxes at one layer: one forward pass and k backward passes from the layer
    from explain import explain_boxes
    from explain.core.boxes import boxes_scores
    from explain.core.hooks import captured, feature_maps

    many = [d for d in detector.detect(image, 0.3)][:4]
    if len(many) >= 2:
        shared = "body._blocks.10"  # both levels are computed from it
        targets = [Box(d.box, d.label) for d in many]
        multi = boxes_scores(detector, [t.for_image(image.size, (320, 320)).input_box
                                        for t in targets], [d.label for d in many])
        module = detector.layer(shared)

        def k_limit() -> None:
            with captured(module, shared, start_graph=True) as capture, torch.no_grad():
                out = multi.model(detector.preprocess(image))
                feature_maps(capture)
                for j in range(len(many)):
                    torch.autograd.grad(out[0, j], capture.activation,
                                        retain_graph=j < len(many) - 1)

        def k_ours() -> None:
            explain_boxes(detector, image, "gradcam", targets, layer=shared)

        k_ours(), k_limit()
        mine, bound_time = paired_times(k_ours, k_limit, 21)
        print(f"{len(many)} boxes' Grad-CAM {mine * 1e3:7.1f} ms, one forward + {len(many)} "
              f"backward {bound_time * 1e3:7.1f} ms: {mine / bound_time:.2f}x (goal <= 1.10)")

    masks = 256
    x = detector.preprocess(image)

    def forward() -> None:
        with torch.inference_mode():
            for start in range(0, masks, 16):
                detector.model(x.repeat(min(16, masks - start), 1, 1, 1))

    def drise() -> None:
        explain(detector, image, "rise", target=target, masks=masks, batch_size=16)

    drise(), forward()
    mine, bound_time = paired_times(drise, forward, 5)
    print(f"D-RISE, {masks} masks: {masks / mine:6.1f} masks/s, the detector's forward "
          f"{masks / bound_time:6.1f} img/s: {bound_time / mine:.2f}x its throughput "
          "(goal >= 0.9)")
    drise_beyond_chance(detector)


def drise_beyond_chance(detector, scenes: int = 6) -> None:
    import time

    import numpy as np
    import torch

    from explain import RECORDS, Box, explain, to_heatmap
    from explain.data import animals_on_photos
    from explain.data.composites import HELD_OUT_SEED
    from explain.evaluate.detection import match
    from explain.evaluate.pointing import energy_in_box

    default = next(o.default for o in RECORDS["rise"].options if o.key == "masks")
    drawn, raw, areas, seconds = [], [], [], []
    for scene in animals_on_photos(scenes, seed=HELD_OUT_SEED):
        found = detector.detect(scene.image, 0.3)
        m = match(np.array([d.box for d in found]).reshape(-1, 4), [d.score for d in found],
                  [d.label for d in found], scene.boxes, scene.labels)
        for d, j in enumerate(m.matched):
            if j < 0:
                continue
            began = time.perf_counter()
            e = explain(detector, scene.image, "rise", target=Box(found[d].box, found[d].label))
            seconds.append(time.perf_counter() - began)
            share, area = energy_in_box(e.heatmap, scene.boxes[j])
            drawn.append(share)
            areas.append(area)
            raw.append(energy_in_box(to_heatmap(torch.from_numpy(e.raw), e.heatmap.shape),
                                     scene.boxes[j])[0])
    drawn, raw, areas = np.array(drawn), np.array(raw), np.array(areas)
    print(f"D-RISE at its default {default} masks over {len(areas)} animals of {scenes} held-out "
          f"scenes: the drawn map's share inside the true box {drawn.mean():.3f} (beats a "
          f"uniform map's {areas.mean():.3f} for {(drawn > areas).mean():.0%} of the boxes; "
          f"goal: most); the raw map's {raw.mean():.3f} ({(raw > areas).mean():.0%}); "
          f"{np.median(seconds):.1f} s a box (median)")


if __name__ == "__main__":
    main()
