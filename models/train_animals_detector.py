"""Train the demo detector's head (``models/animals_detector.py``) on the frozen offline
EfficientNet-Lite0, on CPU, seeded, and write its weights and report:

    .venv/bin/python -m models.train_animals_detector

Data: ``explain.data.animals_on_photos`` (training images with seed 1, held-out ones with seed
2, never seen in training). The backbone is frozen, so its two levels' maps are computed once
per training image and the head trains on them (FCOS's losses: sigmoid focal loss on the
classes, GIoU on the boxes, binary cross-entropy on the centerness; centre sampling within 1.5
strides; an object goes to the stride-16 level when its longer side is at most 88 px, else to
the stride-32 level). Writes ``models/weights/animals_detector.pt`` (the head, a few MB) and
``animals_detector.json`` (the held-out mAP@0.5 and the time), which the README quotes.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from explain.data.composites import HELD_OUT_SEED, TRAIN_SEED, animals_on_photos
from explain.evaluate.detection import mean_average_precision

from .animals_detector import (
    CLASSES,
    LEVELS,
    SIZE,
    SMALL,
    WEIGHTS,
    AnimalsDetector,
    load_pretrained,
    with_backbone_weights,
)
from .preprocess import EFFICIENTNET_LITE, Preprocessing

PREPROCESSING = Preprocessing(size=(SIZE, SIZE), mean=EFFICIENTNET_LITE.mean,
                              std=EFFICIENTNET_LITE.std, interpolation="bicubic")


def assign(boxes: np.ndarray, labels: np.ndarray):
    """Per level, each location's class (-1: background), box (x0, y0, x1, y1) and
    centerness target."""
    out = []
    for level, (_, _, stride) in enumerate(LEVELS):
        side = SIZE // stride
        ys, xs = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
        cx, cy = ((xs + 0.5) * stride).ravel(), ((ys + 0.5) * stride).ravel()
        cls = np.full(side * side, -1, np.int64)
        target = np.zeros((side * side, 4), np.float32)
        area = np.full(side * side, np.inf)
        for box, label in zip(boxes, labels, strict=True):
            longest = max(box[2] - box[0], box[3] - box[1])
            if (longest <= SMALL) != (level == 0):
                continue
            mx, my = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            radius = 1.5 * stride
            near = (np.abs(cx - mx) <= radius) & (np.abs(cy - my) <= radius)
            inside = (cx > box[0]) & (cx < box[2]) & (cy > box[1]) & (cy < box[3])
            chosen = near & inside
            if not chosen.any():  # a thin animal: the location nearest its centre
                chosen = np.zeros_like(near)
                chosen[np.argmin((cx - mx) ** 2 + (cy - my) ** 2)] = True
            size = (box[2] - box[0]) * (box[3] - box[1])
            chosen &= size < area
            cls[chosen], target[chosen], area[chosen] = label - 1, box, size
        l_, t_ = np.clip(cx - target[:, 0], 1e-3, None), np.clip(cy - target[:, 1], 1e-3, None)
        r_, b_ = np.clip(target[:, 2] - cx, 1e-3, None), np.clip(target[:, 3] - cy, 1e-3, None)
        center = np.sqrt(np.minimum(l_, r_) / np.maximum(l_, r_)
                         * np.minimum(t_, b_) / np.maximum(t_, b_))
        out.append((cls, target, center.astype(np.float32)))
    return [np.concatenate(parts) for parts in zip(*out, strict=True)]


def features(model: AnimalsDetector, composites, batch: int = 16) -> list[torch.Tensor]:
    """The frozen body's two levels for every image, as float16 (the head trains on them)."""
    levels: list[list[torch.Tensor]] = [[], []]
    with torch.inference_mode():
        for start in range(0, len(composites), batch):
            x = torch.cat([PREPROCESSING(c.image) for c in composites[start:start + batch]])
            for store, level in zip(levels, model.body(x), strict=True):
                store.append(level.half())
    return [torch.cat(store) for store in levels]


def predictions(model: AnimalsDetector, composites, threshold: float = 0.05):
    out = []
    with torch.inference_mode():
        for start in range(0, len(composites), 16):
            x = torch.cat([PREPROCESSING(c.image) for c in composites[start:start + 16]])
            for found in model.detections(*model(x), threshold=threshold):
                out.append((found.boxes.numpy(), found.scores.numpy(), found.labels.numpy()))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=4000, help="training images")
    parser.add_argument("--test", type=int, default=300, help="held-out images")
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    model = with_backbone_weights(AnimalsDetector())
    train = animals_on_photos(args.train, seed=TRAIN_SEED)
    test = animals_on_photos(args.test, seed=HELD_OUT_SEED)
    p4, p5 = features(model, train)
    targets = [assign(c.boxes, c.labels) for c in train]
    cls = torch.from_numpy(np.stack([t[0] for t in targets]))
    boxes = torch.from_numpy(np.stack([t[1] for t in targets]))
    center = torch.from_numpy(np.stack([t[2] for t in targets]))
    print(f"features of {len(train)} images in {time.perf_counter() - began:.0f} s")
    trained = [*model.fpn.parameters(), *model.head.parameters()]
    optimizer = torch.optim.AdamW(trained, lr=2e-3, weight_decay=1e-4)
    steps = args.epochs * math.ceil(len(train) / args.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=steps,
                                                   pct_start=0.1)
    generator = torch.Generator().manual_seed(0)
    for epoch in range(args.epochs):
        order = torch.randperm(len(train), generator=generator)
        total = 0.0
        for start in range(0, len(train), args.batch):
            rows = order[start:start + args.batch]
            levels = [p4[rows].float(), p5[rows].float()]
            logits, pred, ctr = model.decode([model.fpn["p4"](levels[0]),
                                              model.fpn["p5"](levels[1])])
            want = cls[rows]
            positive = want >= 0
            count = max(1, int(positive.sum()))
            onehot = F.one_hot(want.clamp(min=0), CLASSES).float() * positive[..., None]
            loss_cls = sigmoid_focal_loss(logits, onehot, reduction="sum") / count
            loss_box = generalized_box_iou_loss(pred[positive], boxes[rows][positive],
                                                reduction="mean")
            loss_ctr = F.binary_cross_entropy_with_logits(ctr[positive], center[rows][positive])
            loss = loss_cls + 2 * loss_box + loss_ctr
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(rows)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / len(train):.3f} "
              f"({time.perf_counter() - began:.0f} s)")
    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    head = {f"fpn.{k}": v for k, v in model.fpn.state_dict().items()}
    head.update({f"head.{k}": v for k, v in model.head.state_dict().items()})
    torch.save(head, WEIGHTS)
    trained_model = load_pretrained()
    found = predictions(trained_model, test)
    score = mean_average_precision(found, [(c.boxes, c.labels) for c in test],
                                   range(1, CLASSES + 1))
    seconds = time.perf_counter() - began
    report = {"map50": round(score, 4), "train_images": len(train), "test_images": len(test),
              "epochs": args.epochs, "seconds": round(seconds),
              "seeds": {"train": TRAIN_SEED, "test": HELD_OUT_SEED},
              "weights_bytes": WEIGHTS.stat().st_size}
    WEIGHTS.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"held-out mAP@0.5 {score:.3f} on {len(test)} images; {seconds / 60:.1f} min; "
          f"{WEIGHTS} ({WEIGHTS.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
