"""The metric registry, and evaluating a generator from the command line (``visualizer.py metrics``).

:data:`METRICS` maps every metric name to its function; :func:`compute_metrics` runs several by
name for the trainer. :func:`evaluate` runs them for the command line and returns one flat dict;
:func:`append_results_jsonl` records a run as one JSON line; :func:`run_metrics` is the
``metrics`` batch command (``BatchError`` for bad input, like the other batch commands in
``renderers.batch``). The metrics and their conventions are documented where they live:
``training.metrics`` (swd), ``training.fid`` (fid, kid) and ``training.view_metrics``
(reprojection, geometry, swd-depth, swd-normals).
"""

from __future__ import annotations

import datetime
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from renderers.batch import BatchError
from training.fid import inception_metrics, load_inception
from training.metrics import GeneratorLike, ImageLabelDatasetLike, MetricFn, MetricOptions, swd_metric
from training.view_metrics import geometry_metric, geometry_swd_metrics, reprojection_metric

Log = Callable[[str], None]

RECORD_KEYS = ("model", "data", "seed", "num", "metrics", "time")
"""Keys every results line holds."""


# --- the registry -------------------------------------------------------------------------------

def _fid_metric(G: GeneratorLike, dataset: ImageLabelDatasetLike, options: MetricOptions) -> dict[str, float]:
    return inception_metrics(G, dataset, options, ("fid",))


def _kid_metric(G: GeneratorLike, dataset: ImageLabelDatasetLike, options: MetricOptions) -> dict[str, float]:
    return inception_metrics(G, dataset, options, ("kid",))


def _reprojection_metric(G: GeneratorLike, dataset: ImageLabelDatasetLike | None,
                         options: MetricOptions) -> dict[str, float]:
    return reprojection_metric(G, dataset, options)


def _geometry_metric(G: GeneratorLike, dataset: ImageLabelDatasetLike | None,
                     options: MetricOptions) -> dict[str, float]:
    return geometry_metric(G, dataset, options)


def _swd_depth_metric(G: GeneratorLike, dataset: ImageLabelDatasetLike, options: MetricOptions) -> dict[str, float]:
    return geometry_swd_metrics(G, dataset, options, ("swd-depth",))


def _swd_normals_metric(G: GeneratorLike, dataset: ImageLabelDatasetLike, options: MetricOptions) -> dict[str, float]:
    return geometry_swd_metrics(G, dataset, options, ("swd-normals",))


METRICS: dict[str, MetricFn] = {
    "swd": swd_metric,
    "fid": _fid_metric,
    "kid": _kid_metric,
    "reprojection": _reprojection_metric,
    "geometry": _geometry_metric,
    "swd-depth": _swd_depth_metric,
    "swd-normals": _swd_normals_metric,
}
"""Metrics the trainer can request by name. Each returns a dict holding its own name as a key
(plus ``name/...`` details): fid, kid (``kid/std``), reprojection (``reprojection/valid``),
geometry (``geometry/within10``), swd-depth and swd-normals (per-level ``swd-*/R`` too). See
``training.fid`` and ``training.view_metrics`` for the definitions."""

METRICS_WITHOUT_DATA = frozenset({"reprojection", "geometry"})
"""Metrics that need no dataset (they render fixed orbit views of seeded identities)."""


def compute_metrics(names: Sequence[str], G: GeneratorLike, dataset: ImageLabelDatasetLike,
                    options: MetricOptions | None = None) -> dict[str, float]:
    """Run the named metrics and merge their results; unknown names fail before anything runs."""
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(map(repr, unknown))}; known: {', '.join(METRICS)}")
    options = options or MetricOptions()
    results: dict[str, float] = {}
    for name in names:
        results.update(METRICS[name](G, dataset, options))
    return results


# --- the command line ---------------------------------------------------------------------------

def _check_names(names: list[str]) -> list[str]:
    if isinstance(names, str):
        names = [n for n in names.split(",") if n]
    names = list(dict.fromkeys(names))  # keep order, drop repeats
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        what = f"unknown metric(s) {', '.join(map(repr, unknown))}" if unknown else "no metrics given"
        raise ValueError(f"{what}; known: {', '.join(METRICS)}")
    return names


def evaluate(G, data: str | None, names: list[str], num: int, seed: int = 0, device="cpu",
             inception: str | None = None, batch: int = 8, progress: bool = True) -> dict[str, float]:
    """Run the named metrics on generator ``G`` and return their results as one flat dict.

    Args:
        G: an EG3D-compatible generator (``models.load_generator``); moved to ``device`` and run in
            eval mode (its mode is restored afterwards).
        data: dataset zip or folder; opened only when a metric needs one (all but reprojection and
            geometry).
        names: metric names (:data:`METRICS`); repeats are ignored.
        num: images per set (swd, fid, kid, swd-depth, swd-normals) or identities (reprojection,
            geometry).
        seed: seeds image, pose and latent draws; identities are seeds ``seed .. seed + num - 1``.
        device: where the generator and the Inception network run.
        inception: TorchScript Inception feature network file (fid, kid); see ``training.fid``.
        batch: generator (and Inception) batch size.
        progress: tqdm progress bars on stderr.

    Returns:
        e.g. ``{"fid": .., "kid": .., "kid/std": .., "reprojection": .., "reprojection/valid": ..,
        "geometry": .., "geometry/within10": .., "swd-depth": .., "swd-depth/16": .., ...}``: each
        metric's own name plus ``name/detail`` keys, in the order the metrics were named.

    Raises:
        ValueError: one line, before any rendering, for unknown names, a missing ``data`` or
            ``inception``, bad sizes, or an unusable dataset or Inception file (``DatasetError`` and
            ``InceptionError`` are ValueErrors).
    """
    names = _check_names(names)
    if int(num) < 1 or int(batch) < 1:
        raise ValueError(f"num and batch must be >= 1, got {num} and {batch}")
    need_data = [n for n in names if n not in METRICS_WITHOUT_DATA]
    if need_data and not data:
        raise ValueError(f"metric(s) {', '.join(need_data)} need a dataset (--data PATH)")
    inception_names = [n for n in names if n in ("fid", "kid")]
    if inception_names:
        if not inception:
            raise ValueError(f"metric(s) {', '.join(inception_names)} need the Inception feature network "
                             "(--inception PATH to the TorchScript inception-2015-12-05.pt)")
        load_inception(inception, device)  # fail on a bad file before rendering anything
    dataset = None
    if need_data:
        from training.dataset import ImageLabelDataset

        dataset = ImageLabelDataset(data)
        if dataset.label_dim == 0 or len(dataset) == 0:
            raise ValueError(f"{data}: the metrics need camera labels")
    options = MetricOptions(num_images=int(num), batch=int(batch), device=str(device), seed=int(seed),
                            inception=str(inception) if inception else None, progress=progress)

    was_training = getattr(G, "training", False)
    if isinstance(G, torch.nn.Module):
        G = G.to(device).eval()
    results: dict[str, float] = {}
    try:
        done: set[str] = set()
        for name in names:
            if name in done:
                continue
            if name in ("fid", "kid"):
                results.update(inception_metrics(G, dataset, options, inception_names))  # one feature pass
                done.update(inception_names)
            elif name in ("swd-depth", "swd-normals"):
                wanted = [n for n in names if n in ("swd-depth", "swd-normals")]
                results.update(geometry_swd_metrics(G, dataset, options, wanted))  # one render pass
                done.update(wanted)
            else:
                results.update(METRICS[name](G, dataset, options))
                done.add(name)
    finally:
        if was_training and isinstance(G, torch.nn.Module):
            G.train()
        if dataset is not None:
            dataset.close()
    return {key: float(value) for key, value in results.items()}


def _json_safe(value: Any) -> Any:
    """NaN and infinities become None (strict JSON has no such numbers); containers recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def append_results_jsonl(path, record: dict) -> None:
    """Append ``record`` as one JSON line to ``path`` (created if missing) and fsync it.

    The record must hold ``model``, ``data``, ``seed``, ``num`` and ``metrics`` (the dict
    :func:`evaluate` returned); ``time`` (ISO 8601, UTC) is added when absent. Non-finite numbers
    are written as null. One ``write`` of a whole line in append mode, then flush and fsync, so
    concurrent appenders do not interleave lines and a crash loses at most the line being written.

    Raises:
        ValueError: if a required key is missing.
        OSError: if the file cannot be written.
    """
    from training.run_dir import append_jsonl

    missing = [key for key in RECORD_KEYS if key != "time" and key not in record]
    if missing:
        raise ValueError(f"results record lacks {', '.join(missing)}; needs {', '.join(RECORD_KEYS)}")
    line = dict(record)
    line.setdefault("time", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    append_jsonl(Path(os.fspath(path)), _json_safe(line))


def check_metrics_input(data: str | None, names: Sequence[str]) -> None:
    """``BatchError`` for no or unknown metric names, or a dataset path that is missing or
    unreadable; run before the model loads."""
    if not names:
        raise BatchError("no metrics named (e.g. --metrics fid50k_full)")
    if data is not None:
        p = Path(data)
        if not p.exists():
            raise BatchError(f"{data}: no such dataset file or folder")
        if not os.access(p, os.R_OK):
            raise BatchError(f"{data}: cannot read the dataset (permission denied)")
    known = list(METRICS)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BatchError(f"unknown metric{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: "
                         f"choose from {', '.join(known)}")


def run_metrics(G, model: str, data: str | None, names: Sequence[str], num: int, *, seed: int = 0,
                out: str | os.PathLike | None = None, inception: str | None = None, device: Any = "cpu",
                batch: int = 8, progress: bool = True, log: Log = print) -> dict[str, float]:
    """The ``metrics`` batch command: :func:`evaluate` on ``G``; prints each result and appends a
    record (model, data, seed, num, metrics) to ``out`` (JSON lines) when given."""
    check_metrics_input(data, names)
    if num < 1:
        raise BatchError(f"--num must be >= 1, got {num}")
    try:
        results = evaluate(G, data, list(names), int(num), seed=int(seed), device=device,
                           inception=inception, batch=int(batch), progress=progress)
    except (ValueError, KeyError, OSError) as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BatchError(text) from e
    for name, value in results.items():
        log(f"{name:<20} {value:.6g}")
    if out is not None:
        record = {"model": model, "data": data, "seed": int(seed), "num": int(num),
                  "metrics": {k: float(v) for k, v in results.items()}}
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        append_results_jsonl(out, record)
        log(f"appended to {out}")
    return results
