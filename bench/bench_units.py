"""Speed of the Units page's pass (issue 19): a layer's top images per channel over a dataset,
against a plain forward pass to that layer over the same images (goal: at least 0.9x its
throughput).

Both on the offline default model, 400 Animal-MNIST silhouettes, batches of 8 (the CPU's
measured size), medians of interleaved runs. The limit's images are decoded and preprocessed
before its clock starts; ours decode their own inside it (as the page and the job do), and the
pass records each image's maximum per channel and merges the top 64: so the figure is the
whole of ours against the forward alone.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TQDM_DISABLE", "1")

from bench.bench_methods import paired_times


def main() -> None:
    import torch

    from explain.analysis.units import compute_tops
    from explain.core.hooks import forward_to
    from explain.data.datasets import bundled
    from models import DEFAULT_BACKBONE, load_backbone

    backbone = load_backbone(DEFAULT_BACKBONE, device="cpu")
    dataset = bundled("animal_mnist").subset(40)
    batch = 8
    inputs = torch.cat([backbone.preprocess(dataset.image(i)) for i in range(len(dataset))])
    for layer in ("_blocks.5", "_blocks.12", "_head_act"):
        module = backbone.layer(layer)

        def limit(module=module) -> None:
            with torch.inference_mode():
                for start in range(0, len(inputs), batch):
                    forward_to(backbone.model, inputs[start:start + batch], module)

        def ours(layer=layer) -> None:
            compute_tops(backbone, dataset, layer, 64, batch_size=batch)

        ours(), limit()  # warm-up
        mine, bound = paired_times(ours, limit, 7)
        print(f"top patches of {layer:10s}: {len(dataset) / mine:6.1f} img/s, a forward pass to "
              f"it {len(dataset) / bound:6.1f} img/s: {bound / mine:.2f}x its throughput "
              "(goal >= 0.9)")
    began = time.perf_counter()
    compute_tops(backbone, dataset, "_head_act", 64, batch_size=batch)
    print(f"  ({len(dataset)} images in {time.perf_counter() - began:.1f} s)")


if __name__ == "__main__":
    main()
