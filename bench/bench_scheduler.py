"""What the scheduler adds to a request: a Grad-CAM on the offline default model called
directly and through the scheduler (submit, wait, result), interleaved, medians of many runs.
Goal (issue 9): at most 5 ms a request. Where CUDA is present, also the gain of running 16
sessions' Grad-CAMs as one batch (explain_batch, what the scheduler does there)."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(runs: int = 60) -> None:
    import torch

    from explain import explain
    from explain.data.samples import sample_image
    from models import DEFAULT_BACKBONE, load_backbone
    from serving.scheduler import Scheduler

    torch.set_num_threads(1)
    backbone = load_backbone(DEFAULT_BACKBONE, device="cpu")
    image = sample_image("chelsea")
    scheduler = Scheduler(workers=1, threads=1)
    for _ in range(5):  # warm-up
        explain(backbone, image, "gradcam")
        scheduler.submit(lambda job: explain(backbone, image, "gradcam")).result(60)
    direct, scheduled, empty = [], [], []
    for _ in range(runs):
        start = time.perf_counter()
        explain(backbone, image, "gradcam")
        direct.append(time.perf_counter() - start)
        start = time.perf_counter()
        scheduler.submit(lambda job: explain(backbone, image, "gradcam")).result(60)
        scheduled.append(time.perf_counter() - start)
        start = time.perf_counter()
        scheduler.submit(lambda job: None).result(60)
        empty.append(time.perf_counter() - start)
    d, s, e = (statistics.median(v) * 1000 for v in (direct, scheduled, empty))
    print(f"Grad-CAM direct {d:.1f} ms, through the scheduler {s:.1f} ms: it adds {s - d:.2f} ms "
          f"(an empty request: {e:.2f} ms; goal <= 5 ms)")
    scheduler.close(wait=5)
    cuda_gain(image)


def cuda_gain(image, n: int = 16) -> None:
    import torch

    from explain import explain
    from explain.api import explain_batch
    from models import DEFAULT_BACKBONE, load_backbone

    if not torch.cuda.is_available():
        print("No GPU on this machine: the gain of batching across sessions is measured where "
              "CUDA is present.")
        return
    backbone = load_backbone(DEFAULT_BACKBONE, device="cuda")
    images, targets = [image] * n, [None] * n
    for _ in range(3):
        explain_batch(backbone, images, "gradcam", targets)
        explain(backbone, image, "gradcam")
    single, batched = [], []
    for _ in range(10):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for one in images:
            explain(backbone, one, "gradcam")
        torch.cuda.synchronize()
        single.append(time.perf_counter() - start)
        start = time.perf_counter()
        explain_batch(backbone, images, "gradcam", targets)
        torch.cuda.synchronize()
        batched.append(time.perf_counter() - start)
    s, b = statistics.median(single), statistics.median(batched)
    print(f"CUDA, {n} Grad-CAMs: one by one {s * 1000:.0f} ms, one batch {b * 1000:.0f} ms: "
          f"{s / b:.1f}x the throughput")


if __name__ == "__main__":
    main()
