"""The features of a large server folder, computed by a batch job instead of a page:

    python -m explain features --dataset /srv/data/birds --backbone efficientnet_lite0
    python -m explain features --dataset /srv/data/birds --backbone resnet50 --ray auto
    python -m explain features --dataset /srv/data/birds --backbone resnet50 --units layer4

The job writes the same on-disk store the dashboard reads (``CNN_LENS_CACHE``/features/<key>.npz,
the key of ``explain.analysis.features.feature_key``), so the dashboard opens the folder's map at once.
With ``--units LAYER`` it computes that layer's top dataset images per channel instead (the Units
page's table, ``explain.analysis.units``; CNN_LENS_CACHE/units/<key>.npz): each chunk's top images,
merged exactly in order.
It works in chunks (``--chunk`` images), each saved as it is done: a job that is stopped or
dies resumes where it was. With ``--ray ADDRESS`` (``auto``, ``ray://host:10001``, or ``local``
for a cluster on this machine) the chunks run as Ray Data ``map_batches`` over the cluster's
workers; the dataset folder must be readable at the same path on every worker. Both ways
compute each chunk with the same fixed batch size, so they give the same numbers.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from functools import cache
from pathlib import Path

import numpy as np

from explain.analysis import units
from explain.analysis.features import PENULTIMATE, cache_dir, compute_features, feature_key, save_arrays
from explain.data.datasets import from_folder

BATCH = 32  # fixed: chunks computed anywhere are the same numbers
FEATURES = ("vectors", "predicted", "confidence")
TOPS = ("values", "indices", "cells", "sizes", "map_size")


@cache
def _opened(folder: str, backbone_name: str, weights: str, device: str | None):
    """The dataset and the model, once per process (a Ray worker runs many chunks)."""
    from models import load_backbone

    path = Path(folder)
    return from_folder(path.name, path.parent), load_backbone(backbone_name, weights,
                                                               device=device)


def chunk(folder: str, backbone_name: str, weights: str, device: str | None, layer: str,
          threads: int, start: int, stop: int, tops: bool = False) -> dict[str, np.ndarray]:
    """Images ``start:stop``, with ``threads`` intra-op threads (the order of a convolution's
    sums, and so its last bits, depends on it: every chunk uses the driver's count): their
    features, or with ``tops`` the layer's top images per channel among them."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    dataset, backbone = _opened(folder, backbone_name, weights, device)
    if tops:
        return units.compute_tops(backbone, dataset, layer, min(units.STORED, len(dataset)),
                                  BATCH, indices=range(start, stop))
    vectors, predicted, confidence = compute_features(backbone, dataset, layer, BATCH,
                                                      indices=range(start, stop))
    return {"vectors": vectors, "predicted": predicted, "confidence": confidence}


def run(folder: str | Path, backbone_name: str, layer: str = PENULTIMATE,
        weights: str = "pretrained", device: str | None = None, chunk_size: int = 1024,
        ray_address: str | None = None, quiet: bool = False, tops: bool = False) -> Path:
    """Compute (or finish computing) the features, or with ``tops`` the layer's top images per
    channel; returns the store's file."""
    from tqdm import tqdm

    folder = str(Path(folder).resolve())
    dataset, backbone = _opened(folder, backbone_name, weights, device)
    if tops:  # a layer that is not there, or not spatial, is named before any chunk runs
        import torch

        with torch.inference_mode():
            units.spatial_maps(backbone, layer, backbone.preprocess(dataset.image(0)))
        final = cache_dir() / "units" / f"{units.units_key(backbone, dataset, layer)}.npz"
    else:
        final = cache_dir() / "features" / f"{feature_key(backbone, dataset, layer)}.npz"
    if final.exists():
        if not quiet:
            print(f"Already computed: {final}")
        return final
    parts = final.with_suffix(".parts")
    parts.mkdir(parents=True, exist_ok=True)
    spans = [(s, min(s + chunk_size, len(dataset))) for s in range(0, len(dataset), chunk_size)]
    todo = [span for span in spans if not _part(parts, span[0]).exists()]
    began = time.perf_counter()
    bar = tqdm(total=len(dataset), initial=len(dataset) - sum(b - a for a, b in todo),
               unit="img", desc=f"{backbone_name} on {Path(folder).name}", disable=quiet)
    import torch

    threads = torch.get_num_threads()
    args = (folder, backbone_name, weights, device, layer, threads)
    names = TOPS if tops else FEATURES
    if ray_address:
        results = _on_ray(ray_address, args, todo, threads, tops, names)
    else:
        results = ((start, chunk(*args, start, stop, tops)) for start, stop in todo)
    for start, arrays in results:
        save_arrays(_part(parts, start), **arrays)
        bar.update(len(arrays["sizes" if tops else "predicted"]))
    bar.close()
    _assemble(final, parts, spans, time.perf_counter() - began, names,
              units.merge_chunks if tops else _concatenated)
    if not quiet:
        what = f"Top images per channel of {layer}" if tops else "Features"
        print(f"{what} of {len(dataset)} images: {final}")
    return final


def _part(parts: Path, start: int) -> Path:
    return parts / f"{start:09d}.npz"


def _concatenated(stored: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in stored]) for k in stored[0]}


def _assemble(final: Path, parts: Path, spans: list[tuple[int, int]], seconds: float,
              names: tuple[str, ...], combine) -> None:
    stored = []
    for start, _ in spans:
        with np.load(_part(parts, start)) as part:
            stored.append({k: part[k] for k in names})
    save_arrays(final, **combine(stored), seconds=np.float64(seconds))
    shutil.rmtree(parts, ignore_errors=True)


def _on_ray(address: str, args: tuple, todo: list[tuple[int, int]], threads: int,
            tops: bool, names: tuple[str, ...]):
    """The chunks as Ray Data ``map_batches`` (one chunk per task, ``threads`` CPUs each), in
    order of completion."""
    try:
        import ray
    except ImportError:
        raise SystemExit("--ray needs Ray: pip install 'ray[data]'") from None
    root = str(Path(__file__).resolve().parents[1])
    runtime = {"env_vars": {"PYTHONPATH": root}}
    if address == "local":
        ray.init(runtime_env=runtime, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, runtime_env=runtime, log_to_driver=False)
    try:
        items = ray.data.from_items([{"start": a, "stop": b} for a, b in todo])

        def compute(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            start, stop = int(batch["start"][0]), int(batch["stop"][0])
            arrays = chunk(*args, start, stop, tops)
            return {"start": np.array([start]), **{k: v[None] for k, v in arrays.items()}}

        for row in items.map_batches(compute, batch_size=1, num_cpus=threads).iter_rows():
            yield int(row["start"]), {k: np.asarray(row[k]) for k in names}
    finally:
        ray.shutdown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m explain features",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="an ImageFolder (class/image.jpg)")
    parser.add_argument("--backbone", required=True)
    parser.add_argument("--layer", default=PENULTIMATE)
    parser.add_argument("--weights", default="pretrained", choices=["pretrained", "untrained"])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: what there is)")
    parser.add_argument("--chunk", type=int, default=1024, help="images per saved chunk")
    parser.add_argument("--ray", metavar="ADDRESS", help="run on a Ray cluster (or 'local')")
    parser.add_argument("--units", metavar="LAYER", help="compute LAYER's top images per "
                        "channel (the Units page) instead of features")
    args = parser.parse_args(argv)
    from explain.core.results import ExplainError
    from models import ModelError

    try:
        run(args.dataset, args.backbone, args.units or args.layer, args.weights, args.device,
            args.chunk, args.ray, tops=bool(args.units))
    except (ExplainError, ModelError) as exc:  # a bad folder, image or model, named
        raise SystemExit(f"error: {exc}") from None
    except KeyboardInterrupt:
        raise SystemExit("stopped; run the same command again to resume") from None


def entry(argv: list[str]) -> None:
    if not argv or argv[0] != "features":
        raise SystemExit("usage: python -m explain features --dataset DIR --backbone NAME "
                         "[--ray ADDRESS]")
    main(argv[1:])


if __name__ == "__main__":  # pragma: no cover
    entry(sys.argv[1:])
