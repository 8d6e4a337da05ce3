"""A model of a dataset's own classes on the pages: the pretrained backbone with a linear head
fitted on the dataset's features (``explain.transfer``), made through the scheduler with
progress and Stop, kept for every session, and found again for a dataset's predictions."""

from __future__ import annotations

from explain import Cancelled, ExplainError
from explain.analysis.features import PENULTIMATE, extract_features, feature_key
from explain.analysis.transfer import FITTED, LinearHead, fit_head, with_head
from explain.data.datasets import Dataset, DatasetError
from models import Backbone
from serving.scheduler import Busy, Stopped
from ui.results import ProgressWithStop, compute, result_store

Problem = tuple[str, str] | None


def fitted(base: Backbone, linked, where) -> tuple[Backbone | None, Problem]:
    """``base`` with a head fitted on the link's dataset (``linked()``: see
    ``data.linked_dataset``), or why not (a problem for the main area). ``where``: the
    container its progress and Stop go in."""
    try:
        dataset = linked()
    except DatasetError as exc:
        return None, ("error", f"No head can be fitted: {exc}")
    if dataset is None:
        return None, ("info", "A head is fitted on a dataset: upload the zip again on a dataset "
                              "page (Embedding map, Errors, Gallery) to fit one on it.")
    run_key = ("head", base.identity, dataset.digest)
    progress = ProgressWithStop(where, run_key, f"Fitting a head on {len(dataset)} images")
    try:
        head = compute(run_key, lambda job: _fit(base, dataset, job.report), slot="head",
                       where=where.empty(), progress=progress)
    except (ExplainError, Busy) as exc:
        return None, ("warning", f"No head can be fitted on {dataset.title}: {exc}")
    except (Stopped, Cancelled):
        return None, ("info", "Stopped: the head was not fitted.")
    finally:
        progress.done()
    model = result_store().get(("fitted-model", base.identity, head.key, head.digest),
                               lambda: with_head(base, head, f"{dataset.title} (held-out "
                                                 f"accuracy {head.accuracy:.1%}, "
                                                 f"{head.folds}-fold)"))
    return model, None


def _fit(base: Backbone, dataset: Dataset, report) -> LinearHead:
    features = extract_features(base, dataset, PENULTIMATE, progress=report)
    return fit_head(features, dataset.labels, dataset.classes)


def held_out(backbone: Backbone, dataset: Dataset) -> LinearHead | None:
    """The head of ``backbone`` when it was fitted on exactly ``dataset``'s features (its
    ``weights_id`` names them): its held-out predictions are the dataset's, since the model's
    own saw every image. From memory, else from disk (fitted before, so no model work)."""
    if backbone.weights != FITTED or backbone.base is None:
        return None
    key = feature_key(backbone.base, dataset, PENULTIMATE)
    if backbone.weights_id.split(":")[0] != key:
        return None
    return result_store().get(("head-of", backbone.identity),
                              lambda: _fit(backbone.base, dataset, None))
