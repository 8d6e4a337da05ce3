"""Train the demo segmenter's head (``models/animals_segmenter.py``) on the frozen offline
EfficientNet-Lite0, on CPU, seeded, and write its weights and report:

    .venv/bin/python -m models.train_animals_segmenter

Data: ``explain.data.animals_on_photos`` with its masks (training images with seed 1, held-out
ones with seed 2, never seen in training). The backbone is frozen, so its three stages' maps
are computed once per training image and the head trains on them: cross-entropy against each
scene's label map at stride 4 (its pixel at each cell's centre). The held-out mIoU is over the
11 classes (the background and the 10 animals): per class, the intersection over union of the
predicted and true pixels over all held-out images at their full size. Writes
``models/weights/animals_segmenter.pt`` (the head) and ``animals_segmenter.json`` (the mIoU,
per-class IoU and the time), which the README quotes.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from explain.data.composites import HELD_OUT_SEED, TRAIN_SEED, animals_on_photos
from explain.evaluate.segmentation import IoUs, one_class_per_region, pixel_confusion

from .animals_detector import with_backbone_weights
from .animals_segmenter import CLASSES, SIZE, WEIGHTS, AnimalsSegmenter, load_pretrained
from .preprocess import EFFICIENTNET_LITE, Preprocessing

PREPROCESSING = Preprocessing(size=(SIZE, SIZE), mean=EFFICIENTNET_LITE.mean,
                              std=EFFICIENTNET_LITE.std, interpolation="bicubic")
STRIDE = 4  # the loss's resolution


def features(model: AnimalsSegmenter, composites, batch: int = 16):
    """The frozen body's three stages for every image, as float16."""
    stages: list[list[torch.Tensor]] = [[], [], []]
    with torch.inference_mode():
        for start in range(0, len(composites), batch):
            x = torch.cat([PREPROCESSING(c.image) for c in composites[start:start + batch]])
            for store, stage in zip(stages, model.body(x), strict=True):
                store.append(stage.half())
    return [torch.cat(store) for store in stages]


def label_maps(composites) -> torch.Tensor:
    """(N, SIZE / STRIDE, SIZE / STRIDE) int64: each cell's centre pixel's label."""
    half = STRIDE // 2
    maps = np.stack([c.label_map()[half::STRIDE, half::STRIDE] for c in composites])
    return torch.from_numpy(maps)


def predicted(model: AnimalsSegmenter, composites) -> list[np.ndarray]:
    out = []
    with torch.inference_mode():
        for start in range(0, len(composites), 16):
            x = torch.cat([PREPROCESSING(c.image) for c in composites[start:start + 16]])
            out += list(model(x).argmax(1).numpy())
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=5000, help="training images")
    parser.add_argument("--test", type=int, default=300, help="held-out images")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    model = with_backbone_weights(AnimalsSegmenter())
    train = animals_on_photos(args.train, seed=TRAIN_SEED)
    test = animals_on_photos(args.test, seed=HELD_OUT_SEED)
    stages = features(model, train)
    labels = label_maps(train)
    print(f"features of {len(train)} images in {time.perf_counter() - began:.0f} s")
    optimizer = torch.optim.AdamW(model.head.parameters(), lr=2e-3, weight_decay=1e-4)
    count = len(labels)
    steps = args.epochs * math.ceil(count / args.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=steps,
                                                   pct_start=0.1)
    generator = torch.Generator().manual_seed(0)
    model.head.train()
    side = SIZE // STRIDE
    for epoch in range(args.epochs):
        order = torch.randperm(count, generator=generator)
        total = 0.0
        for start in range(0, count, args.batch):
            rows = order[start:start + args.batch]
            logits = model.logits_of(*(s[rows].float() for s in stages), (side, side))
            loss = F.cross_entropy(logits, labels[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(rows)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / count:.4f} "
              f"({time.perf_counter() - began:.0f} s)")
    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    torch.save({f"head.{k}": v for k, v in model.head.state_dict().items()}, WEIGHTS)
    trained = load_pretrained()
    maps, truths = predicted(trained, test), [c.label_map() for c in test]
    ious = IoUs(pixel_confusion(maps, truths, CLASSES))
    whole = IoUs(pixel_confusion([one_class_per_region(m) for m in maps], truths, CLASSES))
    seconds = time.perf_counter() - began
    report = {"miou": round(ious.mean, 4), "per_class_iou": [round(v, 4) for v in ious.values],
              "miou_one_class_per_region": round(whole.mean, 4),
              "train_images": len(train), "test_images": len(test), "epochs": args.epochs,
              "seconds": round(seconds), "seeds": {"train": TRAIN_SEED, "test": HELD_OUT_SEED},
              "weights_bytes": WEIGHTS.stat().st_size}
    WEIGHTS.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"held-out mIoU {ious.mean:.3f} on {len(test)} images (per class: "
          f"{', '.join(f'{v:.2f}' for v in ious.values)}); {seconds / 60:.1f} min; {WEIGHTS} "
          f"({WEIGHTS.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
