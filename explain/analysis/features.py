"""Dataset-level analysis: features, 2-D maps (PCA, t-SNE, UMAP), nearest neighbours, k-NN probes.

Features of a dataset are computed once per (backbone, weights, layer, dataset content, input
size) and kept on disk, so a second visit, or a restart, costs nothing. The default layer is the
penultimate one: the pooled vector the classifier reads.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from explain.core.batching import BatchSizer
from explain.core.hooks import as_maps, captured, evaluating, layer_of
from explain.core.results import ExplainError, Progress
from explain.data.datasets import Dataset

PENULTIMATE = "penultimate"
CACHE_ENV = "CNN_LENS_CACHE"


def cache_dir() -> Path:
    """Where features and maps are kept (``CNN_LENS_CACHE``, default ~/.cache/cnn_lens)."""
    default = Path.home() / ".cache" / "cnn_lens"
    return Path(os.environ.get(CACHE_ENV, default))


@dataclass(frozen=True, eq=False)
class Features:
    """``vectors``: (N, D) float32, one per dataset image; ``predicted`` and ``confidence``: the
    model's own top-1 class index and probability per image."""

    key: str
    layer: str
    vectors: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray
    seconds: float
    cached: bool = False

    @cached_property
    def squared_norms(self) -> np.ndarray:
        return np.einsum("ij,ij->i", self.vectors, self.vectors)

    @cached_property
    def unit(self) -> np.ndarray:
        """Rows scaled to unit length (for cosine similarity)."""
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        return self.vectors / np.maximum(norms, 1e-12)


def feature_key(backbone, dataset: Dataset, layer: str) -> str:
    # the model's identity but its device: features computed on one device serve the others
    parts = (*backbone.identity[:-1], layer, dataset.digest, str(backbone.preprocessing))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def _pooled(backbone, layer: str):
    """Capture, for this thread, the vector a layer gives per image (``hooks.captured``): the
    classifier's input (penultimate), or a layer's output averaged over space."""
    if layer == PENULTIMATE:
        name = backbone.spec.classifier
        return captured(backbone.layer(name), name, inputs=True,
                        reduce=lambda x: x.flatten(1).float())
    tokens = backbone.spec.tokens

    def pool(output: torch.Tensor) -> torch.Tensor:
        if output.ndim == 2 and tokens is None:
            return output.float()
        return as_maps(output, layer, tokens).mean(dim=(2, 3)).float()

    return captured(layer_of(backbone, layer), layer, tokens=tokens, reduce=pool)


def _take(capture) -> torch.Tensor:
    """The one pooled batch a forward pass left (a layer that runs more than once: an error)."""
    if len(capture.outputs) != 1:
        raise ExplainError("This layer does not run exactly once per forward pass.")
    return capture.outputs.pop()


def extract_features(backbone, dataset: Dataset, layer: str = PENULTIMATE,
                     batch_size: int | None = None, progress: Progress | None = None,
                     directory: Path | None = None) -> Features:
    """Features of every image of ``dataset`` (in order), from disk when computed before. A
    backbone with a replaced head (``Backbone.base``) has its base's features, and the
    predictions of its own head on its base's penultimate features: nothing is computed
    twice."""
    if backbone.base is not None:
        return _own_head(backbone, extract_features(backbone.base, dataset, layer, batch_size,
                                                    progress, directory),
                         extract_features(backbone.base, dataset, PENULTIMATE, batch_size,
                                          progress, directory), dataset)
    key = feature_key(backbone, dataset, layer)
    path = (directory or cache_dir()) / "features" / f"{key}.npz"
    if path.exists():
        try:
            with np.load(path) as stored:
                return Features(key, layer, stored["vectors"], stored["predicted"],
                                stored["confidence"], float(stored["seconds"]), cached=True)
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # damaged: compute again
    began = time.perf_counter()
    vectors, predicted, confidence = compute_features(backbone, dataset, layer, batch_size,
                                                      progress)
    features = Features(key, layer, vectors, predicted, confidence, time.perf_counter() - began)
    save_arrays(path, vectors=features.vectors, predicted=features.predicted,
          confidence=features.confidence, seconds=np.float64(features.seconds))
    return features


def _own_head(backbone, features: Features, penultimate: Features, dataset: Dataset) -> Features:
    fc = backbone.layer(backbone.spec.classifier)
    with torch.inference_mode():
        logits = fc(torch.from_numpy(penultimate.vectors).to(next(fc.parameters()).device))
        top = logits.float().softmax(dim=1).max(dim=1)
    return Features(feature_key(backbone, dataset, features.layer), features.layer,
                    features.vectors, top.indices.cpu().numpy().astype(np.int64),
                    top.values.cpu().numpy().astype(np.float32), features.seconds,
                    features.cached)


def compute_features(backbone, dataset: Dataset, layer: str = PENULTIMATE,
                     batch_size: int | None = None, progress: Progress | None = None,
                     indices: Sequence[int] | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vectors, predicted, confidence) of the images ``indices`` (default: all), with no disk
    cache: the core of ``extract_features`` and of the batch job's chunks. A fixed
    ``batch_size`` gives the same numbers wherever and in whatever pieces it runs."""
    model = backbone.model
    indices = range(len(dataset)) if indices is None else indices
    n = len(indices)
    sizer = BatchSizer(model, backbone.device, ("features", *backbone.preprocessing.size),
                       batch_size)
    vectors: list[np.ndarray] = []
    predicted: list[np.ndarray] = []
    confidence: list[np.ndarray] = []
    # Images are decoded in this thread, not beside torch's own (they would contend for the
    # cores and the GIL).
    images = (backbone.preprocessing(dataset.image(int(i))) for i in indices)
    try:
        with evaluating(model), _pooled(backbone, layer) as capture, torch.inference_mode():
            done = 0
            while done < n:
                size = min(sizer.next(), n - done)
                batch = torch.cat([next(images) for _ in range(size)]).to(backbone.device)
                tic = time.perf_counter()
                probs = model(batch).float().softmax(dim=1)
                sizer.record(size, time.perf_counter() - tic)
                vectors.append(_take(capture).cpu().numpy())
                top = probs.max(dim=1)
                predicted.append(top.indices.cpu().numpy())
                confidence.append(top.values.cpu().numpy())
                done += size
                if progress is not None:
                    progress(done, n)
    finally:
        images.close()
    return (np.concatenate(vectors).astype(np.float32), np.concatenate(predicted).astype(np.int64),
            np.concatenate(confidence).astype(np.float32))


def image_features(backbone, image, layer: str = PENULTIMATE) -> np.ndarray:
    """The (D,) feature vector of one image (a PIL image), as ``extract_features`` computes it."""
    with evaluating(backbone.model), _pooled(backbone, layer) as capture, torch.inference_mode():
        backbone.model(backbone.preprocess(image))
    return _take(capture)[0].cpu().numpy().astype(np.float32)


def save_arrays(path: Path, **arrays) -> None:
    """Write atomically: a reader never sees half a file, two writers never mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
        np.savez(tmp, **arrays)
    os.replace(tmp.name, path)
