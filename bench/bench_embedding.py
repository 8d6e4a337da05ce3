"""Speed of the dataset views, next to the obvious alternatives (issue 4). Ratios and seconds
measured in one run; these machines are noisy, so compare within a run.

  feature extraction      >= 0.9 x raw forward throughput at the best batch size
  UMAP, 10,000 points     <= 10 s warm, <= 30 s cold (numba compile), < 1 s cached
  t-SNE, 10,000 points    openTSNE (used) vs scikit-learn's TSNE
  k-NN query, 10,000      < 50 ms: brute force (used) vs scikit-learn's ball tree
Run: .venv/bin/python bench/bench_embedding.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from explain.analysis import features as feature_store  # noqa: E402
from explain.analysis import neighbours, projections  # noqa: E402
from explain.core.batching import CANDIDATES  # noqa: E402
from explain.data import datasets  # noqa: E402
from models import load_backbone  # noqa: E402


def seconds(fn, repeats: int = 3) -> float:
    fn()
    values = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        values.append(time.perf_counter() - start)
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sets")
    args = parser.parse_args()
    per_class = 20 if args.quick else 60
    backbone = load_backbone("efficientnet_lite0")
    full = datasets.animal_mnist()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    # 1. extraction against raw forward throughput at the best batch size
    sample = full.subset(per_class, seed=1)
    inputs = torch.cat([backbone.preprocessing(sample.image(i)) for i in range(16)])
    per_image = {}
    with torch.inference_mode():
        for size in CANDIDATES[backbone.device.type]:
            batch = inputs[:size]
            per_image[size] = seconds(lambda b=batch: backbone.model(b), 5) / size
    best = min(per_image, key=per_image.__getitem__)
    with tempfile.TemporaryDirectory() as tmp:
        feature_store.extract_features(backbone, full.subset(2, seed=9), directory=Path(tmp))  # tune
        start = time.perf_counter()
        feature_store.extract_features(backbone, sample, directory=Path(tmp))
        extract = (time.perf_counter() - start) / len(sample)
    print("forward ms/image by batch size: "
          + ", ".join(f"{k}: {v * 1e3:.1f}" for k, v in per_image.items()) + f"; best {best}")
    print(f"extraction: {extract * 1e3:.1f} ms/image, throughput ratio "
          f"{per_image[best] / extract:.2f} (goal >= 0.9)")

    # 2. 10,000-point maps, on features shaped like the real ones
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 1280)).astype(np.float32) * 3
    vectors = (centres[rng.integers(0, 10, 10_000)] + rng.normal(size=(10_000, 1280))).astype(
        np.float32)
    features = feature_store.Features("bench", "penultimate", vectors, np.zeros(10_000, np.int64),
                                  np.zeros(10_000, np.float32), 0.0)
    def cold(warm_up_first: bool) -> float:
        """A new process (as a restarted server): import, then the 10,000-point map; with the
        server's background warm-up started just before the map is asked for, or without."""
        script = (
            "import time, threading; t = time.perf_counter(); import numpy as np;"
            "from explain.analysis import projections; x = np.load(%r);"
            + ("threading.Thread(target=projections.warm_up_umap, daemon=True).start();"
               if warm_up_first else "")
            + "projections.project(x, 'umap'); print(time.perf_counter() - t)")
        out = subprocess.run([sys.executable, "-c", script % stored.name], capture_output=True,
                             cwd=ROOT, check=True).stdout.decode().strip().splitlines()[-1]
        return float(out)

    with tempfile.NamedTemporaryFile(suffix=".npy") as stored:
        np.save(stored.name, vectors)
        cold_plain, cold_raced = cold(False), cold(True)
    projections.warm_up_umap()
    warm = seconds(lambda: projections.project(vectors, "umap"), 1)
    with tempfile.TemporaryDirectory() as tmp:
        projections.cached_projection(features, "umap", directory=Path(tmp), n_neighbors=15,
                                    min_dist=0.1)
        cached = seconds(lambda: projections.cached_projection(
            features, "umap", directory=Path(tmp), n_neighbors=15, min_dist=0.1), 3)
    print(f"UMAP 10,000 points: new process {cold_plain:.1f} s, new process with the server's "
          f"warm-up racing it {cold_raced:.1f} s (goal 30, import included), warm {warm:.1f} s "
          f"(goal 10), cached {cached * 1e3:.0f} ms (goal < 1000)")
    opentsne = seconds(lambda: projections.project(vectors, "tsne"), 1)
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    reduced = PCA(50, random_state=0).fit_transform(vectors)
    sk = seconds(lambda: TSNE(random_state=0).fit_transform(reduced), 0 if args.quick else 1)
    print(f"t-SNE 10,000 points: openTSNE {opentsne:.1f} s, scikit-learn {sk:.1f} s")

    # 3. one k-NN query at 10,000 points
    from sklearn.neighbors import NearestNeighbors

    query = vectors[123] + 0.01
    brute = seconds(lambda: neighbours.nearest(features, query, 8, "euclidean"), 20)
    tree = NearestNeighbors(n_neighbors=8, algorithm="ball_tree").fit(vectors)
    indexed = seconds(lambda: tree.kneighbors(query[None]), 20)
    cosine = seconds(lambda: neighbours.nearest(features, query, 8, "cosine"), 20)
    print(f"k-NN query at 10,000: brute force {brute * 1e3:.1f} ms (euclidean), "
          f"{cosine * 1e3:.1f} ms (cosine); ball tree {indexed * 1e3:.1f} ms (goal < 50 ms)")


if __name__ == "__main__":
    main()
