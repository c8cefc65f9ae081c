"""Fréchet and kernel Inception distances (FID, KID) from a user-supplied Inception network.

Both compare Inception-v3 pool features (2048 per image) of real and generated images:

* FID (Heusel et al. 2017): the Fréchet distance between Gaussians fitted to the two feature sets,
  ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))``, with the unbiased (N - 1) sample
  covariances. Reported as is (lower is closer; 0 for identical statistics).
* KID (Bińkowski et al. 2018): the unbiased estimate of the squared maximum mean discrepancy with
  the cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3`` (d = feature dimension), averaged over
  ``num_subsets`` random subsets of ``subset_size`` features drawn without replacement from each
  set (100 subsets of up to 1000, the usual setting). Reported *unscaled* (not x1e3), as
  StyleGAN2-ADA's metrics do; it can be slightly negative when the sets match. ``kid/std`` is the
  standard deviation over the subsets.

We cannot ship or download the network: the user passes the TorchScript file commonly published as
``inception-2015-12-05.pt`` (StyleGAN2-ADA / StyleGAN3 metrics), which is called as
``net(images, return_features=True)`` with uint8 [N, 3, H, W] images in [0, 255] of any size (the
file resizes to 299 itself) and returns [N, 2048] float features. Results are comparable with
other tools only when they use that same file.

The statistics (:func:`frechet_distance`, :func:`kernel_inception_distance`) are plain numpy
float64 and need no network, so they are tested against closed forms. The matrix square root is
taken through symmetric eigen-decompositions (:func:`trace_sqrt_product`), and with fewer images
than features through an exact low-rank form (:func:`frechet_distance_features`); scipy is not
needed.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from training.metrics import (
    GeneratorLike,
    ImageLabelDatasetLike,
    MetricOptions,
    _dataset_resolution,
    _fake_batches,
    _real_batches,
)

INCEPTION_FEATURES = 2048
"""Feature width of the Inception pool layer that FID and KID are defined on."""

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


class InceptionError(ValueError):
    """The Inception feature network cannot be used; the message is one line naming the file."""


# --- statistics ---------------------------------------------------------------------------------

def feature_statistics(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and unbiased covariance [D, D] (float64) of features [N, D], N >= 2."""
    f = np.asarray(features.cpu() if isinstance(features, torch.Tensor) else features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be [N, D] with N >= 2, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    w, v = np.linalg.eigh(matrix)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``tr((S1 S2)^(1/2))`` for symmetric PSD S1, S2.

    ``S1 S2`` is not symmetric, so instead of a general matrix square root (``scipy.linalg.sqrtm``,
    which may return complex round-off and is slow on 2048 x 2048) we use that ``S1 S2`` and the
    symmetric PSD ``M = S1^(1/2) S2 S1^(1/2)`` have the same eigenvalues (``AB`` and ``BA`` share
    them, with ``A = S1^(1/2)``, ``B = S1^(1/2) S2``), all real and >= 0; the trace of the square root
    is the sum of their square roots. Two symmetric eigen-decompositions, exact also for singular
    covariances (fewer images than features), and no scipy dependency.
    """
    root = _psd_sqrt(sigma1)
    m = root @ sigma2 @ root
    eigenvalues = np.linalg.eigvalsh((m + m.T) * 0.5)
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, S1) and N(mu2, S2):
    ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))`` (float64; >= 0 up to round-off)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"need means [D] and covariances [D, D] of one D, got {mu1.shape}, {sigma1.shape}, "
                         f"{mu2.shape}, {sigma2.shape}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2))


def frechet_distance_features(feats_a: np.ndarray | torch.Tensor, feats_b: np.ndarray | torch.Tensor) -> float:
    """FID of two feature sets [N_a, D], [N_b, D]: ``frechet_distance`` of their statistics.

    With fewer samples than features the covariances are low-rank, ``S = A A^T`` with ``A`` the
    centred features over ``sqrt(N - 1)`` ([D, N]); then ``tr(S) = |A|_F^2`` and the eigenvalues
    of ``S_a S_b`` are the squared singular values of ``A_a^T A_b`` ([N_a, N_b]), so
    ``tr((S_a S_b)^(1/2))`` is that small matrix's nuclear norm. The same number, without
    decomposing D x D matrices (a few seconds each for D = 2048 on a CPU).
    """
    a = np.asarray(feats_a.cpu() if isinstance(feats_a, torch.Tensor) else feats_a, dtype=np.float64)
    b = np.asarray(feats_b.cpu() if isinstance(feats_b, torch.Tensor) else feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(a.shape[0], b.shape[0]) < 2:
        raise ValueError(f"features must be [N, D] of one D with N >= 2, got shapes {a.shape} and {b.shape}")
    if max(a.shape[0], b.shape[0]) >= a.shape[1]:
        return frechet_distance(*feature_statistics(a), *feature_statistics(b))
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    ca = (a - mu_a).T / math.sqrt(a.shape[0] - 1)
    cb = (b - mu_b).T / math.sqrt(b.shape[0] - 1)
    nuclear = float(np.linalg.svd(ca.T @ cb, compute_uv=False).sum())
    diff = mu_a - mu_b
    return float(diff @ diff + (ca * ca).sum() + (cb * cb).sum() - 2.0 * nuclear)


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of samples x [m, d], y [n, d] under ``k(a, b) = (a.b / d + 1)^3``:
    ``sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
    - 2 sum_{i, j} k(x_i, y_j) / (m n)``."""
    m, n, d = x.shape[0], y.shape[0], x.shape[1]
    kxx = (x @ x.T / d + 1.0) ** 3
    kyy = (y @ y.T / d + 1.0) ** 3
    kxy = (x @ y.T / d + 1.0) ** 3
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * kxy.mean())


def kid_subsets(feats_a: np.ndarray | torch.Tensor, feats_b: np.ndarray | torch.Tensor,
                num_subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> np.ndarray:
    """[num_subsets] unbiased MMD^2 values, each between ``min(subset_size, N_a, N_b)`` features
    drawn without replacement from each set (numpy ``default_rng(seed)``; a subset as large as a
    set takes all of it, so then every value is the same)."""
    a = np.asarray(feats_a.cpu() if isinstance(feats_a, torch.Tensor) else feats_a, dtype=np.float64)
    b = np.asarray(feats_b.cpu() if isinstance(feats_b, torch.Tensor) else feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be [N, D] of one D, got shapes {a.shape} and {b.shape}")
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be >= 1, got {num_subsets}")
    m = min(subset_size, a.shape[0], b.shape[0])
    if m < 2:
        raise ValueError(f"KID needs at least 2 features per set, got {a.shape[0]} and {b.shape[0]}")
    if m == a.shape[0] == b.shape[0]:  # every subset is the whole of both sets
        return np.full(num_subsets, mmd2_unbiased(a, b))
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for s in range(num_subsets):
        x = a if m == a.shape[0] else a[rng.choice(a.shape[0], m, replace=False)]
        y = b if m == b.shape[0] else b[rng.choice(b.shape[0], m, replace=False)]
        values[s] = mmd2_unbiased(x, y)
    return values


def kernel_inception_distance(feats_a: np.ndarray | torch.Tensor, feats_b: np.ndarray | torch.Tensor,
                              num_subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE,
                              seed: int = 0) -> float:
    """KID: the mean of :func:`kid_subsets` (unscaled)."""
    return float(kid_subsets(feats_a, feats_b, num_subsets, subset_size, seed).mean())


# --- the feature network ------------------------------------------------------------------------

_NETWORK_CACHE: dict[tuple[str, int, int, str], InceptionFeatures] = {}


class InceptionFeatures:
    """A loaded TorchScript feature network: call with uint8 [N, 3, H, W] -> float32 [N, 2048] (CPU)."""

    def __init__(self, net: torch.jit.ScriptModule, path: Path, device: torch.device):
        self.net, self.path, self.device = net, path, device

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"Inception input must be uint8 [N, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        try:
            out = self.net(images.to(self.device), return_features=True)
        except (RuntimeError, TypeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InceptionError(f"{self.path}: calling net(images, return_features=True) failed ({first}); "
                                 "expected the inception-2015-12-05.pt TorchScript feature network") from e
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (images.shape[0], INCEPTION_FEATURES):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InceptionError(f"{self.path}: returned {shape} for {images.shape[0]} images, expected "
                                 f"[{images.shape[0]}, {INCEPTION_FEATURES}] features")
        out = out.float().cpu()
        if not torch.isfinite(out).all():
            raise InceptionError(f"{self.path}: returned non-finite features")
        return out


def load_inception(path: str | os.PathLike, device: torch.device | str = "cpu") -> InceptionFeatures:
    """Load the user's TorchScript Inception feature network (cached per file, mtime and device).

    Security: TorchScript is code. Loading and calling it runs whatever program the file holds,
    so it must be a file the user chose to trust (e.g. NVIDIA's ``inception-2015-12-05.pt``). This
    differs from our own checkpoints, which are safetensors (tensors only) and safe to open from
    anywhere; nothing in this project loads TorchScript except this function, on explicit request.

    Raises:
        InceptionError: one line naming the file if it is missing or not TorchScript.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        what = "is a folder, not" if p.is_dir() else "no such file; expected"
        raise InceptionError(f"{p}: {what} a TorchScript Inception feature network (inception-2015-12-05.pt)")
    stat = p.stat()
    device = torch.device(device)
    key = (str(p.resolve()), stat.st_mtime_ns, stat.st_size, str(device))
    if key not in _NETWORK_CACHE:
        try:
            with warnings.catch_warnings():  # deprecated in torch, but it is the format the file comes in
                warnings.simplefilter("ignore", DeprecationWarning)
                net = torch.jit.load(str(p), map_location=device)
        except Exception as e:  # torch raises RuntimeError, ValueError or zipfile errors for non-TorchScript
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InceptionError(f"{p}: not a TorchScript file ({first[:200]})") from e
        net.eval()
        _NETWORK_CACHE[key] = InceptionFeatures(net, p, device)
    return _NETWORK_CACHE[key]


def extract_features(net: InceptionFeatures, batches: Iterable[torch.Tensor], total: int | None = None,
                     progress: bool = False, desc: str = "features") -> torch.Tensor:
    """Features [N, 2048] (float32, CPU) of uint8 image batches."""
    from tqdm import tqdm

    parts = []
    with tqdm(total=total, desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for images in batches:
            parts.append(net(images))
            bar.update(images.shape[0])
    if not parts:
        raise ValueError("no images to compute Inception features of")
    return torch.cat(parts)


# --- the metric ---------------------------------------------------------------------------------

_REAL_FEATURE_CACHE: dict[tuple[object, ...], torch.Tensor] = {}


def clear_feature_cache() -> None:
    """Forget cached real-image features."""
    _REAL_FEATURE_CACHE.clear()


@torch.no_grad()
def inception_metrics(G: GeneratorLike, dataset: ImageLabelDatasetLike, options: MetricOptions,
                      which: Sequence[str] = ("fid", "kid")) -> dict[str, float]:
    """FID and/or KID between dataset images and fakes, sharing one pass of features.

    Reals: ``min(num_images, len(dataset))`` distinct images (``training.metrics`` draws them);
    fakes: ``num_images``, rendered from random dataset poses at the dataset's resolution and
    quantised to uint8 like the reals. Real features are cached per dataset path and settings.

    Returns:
        ``{"fid": ...}`` and/or ``{"kid": ..., "kid/std": ...}``.

    Raises:
        ValueError (InceptionError): no ``options.inception`` or an unusable network.
    """
    unknown = set(which) - {"fid", "kid"}
    if unknown or not which:
        raise ValueError(f"which must name fid and/or kid, got {list(which)}")
    if not options.inception:
        raise InceptionError("fid and kid need the Inception feature network: pass --inception PATH to the "
                             "TorchScript inception-2015-12-05.pt (it is not shipped or downloaded)")
    if options.num_images < 2 or options.batch < 1:
        raise ValueError(f"fid/kid need num_images >= 2 and batch >= 1, got {options.num_images} and {options.batch}")
    if len(dataset) < 2:
        raise ValueError("fid/kid need a dataset of at least 2 images")
    net = load_inception(options.inception, options.device)
    resolution = _dataset_resolution(dataset)
    real_options = replace(options, num_images=min(options.num_images, len(dataset)))
    path = getattr(dataset, "path", None)
    key = (str(path), len(dataset), resolution, real_options.num_images, options.seed, str(net.path),
           net.path.stat().st_mtime_ns)
    reals = _REAL_FEATURE_CACHE.get(key) if path is not None else None
    if reals is None:
        reals = extract_features(net, _real_batches(dataset, real_options), real_options.num_images,
                                 options.progress, "inception reals")
        if path is not None:
            _REAL_FEATURE_CACHE[key] = reals
    fakes = extract_features(net, _fake_batches(G, dataset, options, resolution), options.num_images,
                             options.progress, "inception fakes")
    out: dict[str, float] = {}
    if "fid" in which:
        out["fid"] = frechet_distance_features(reals, fakes)
    if "kid" in which:
        values = kid_subsets(reals, fakes, KID_SUBSETS, KID_SUBSET_SIZE, options.seed)
        out["kid"] = float(values.mean())
        out["kid/std"] = float(values.std())
    return out
