"""training/metrics.py: multi-scale sliced Wasserstein distance; the trainer's metric registry
(training/evaluation.py: METRICS, compute_metrics)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ops.stylegan2 import filter2d, setup_filter
from training import metrics
from training.evaluation import METRICS, compute_metrics
from training.metrics import (
    MetricOptions,
    laplacian_pyramid,
    sliced_wasserstein,
    swd_descriptors,
)

# Small settings keep each SWD call to tens of milliseconds.
FAST = dict(patches_per_image=32, dirs_per_repeat=32, dir_repeats=2)


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """These ops are too small to gain from threads, and on a busy 2-core machine the second
    thread's spin-waiting made this file ~40x slower (0.4 s -> 17 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def blob_images(count: int, resolution: int, seed: int) -> torch.Tensor:
    """[count, 3, R, R] float in [-1, 1]: a few soft coloured Gaussian blobs on a dark background."""
    gen = torch.Generator().manual_seed(seed)
    coords = (torch.arange(resolution) + 0.5) / resolution
    yy, xx = coords[:, None], coords[None, :]
    images = torch.full((count, 3, resolution, resolution), -0.8)
    for _ in range(5):
        cy, cx = torch.rand(2, count, 1, 1, generator=gen)
        sigma = 0.05 + 0.15 * torch.rand(count, 1, 1, generator=gen)
        color = torch.rand(count, 3, 1, 1, generator=gen) * 1.6
        blob = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))  # [count, R, R]
        images = images + color * blob[:, None]
    return images.clamp(-1, 1)


def noise_images(count: int, resolution: int, seed: int) -> torch.Tensor:
    """[count, 3, R, R] float: i.i.d. uniform pixels in [-1, 1]."""
    return torch.rand(count, 3, resolution, resolution, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    return (images * 127.5 + 127.5).round().clamp(0, 255).to(torch.uint8)


def blur(images: torch.Tensor, passes: int) -> torch.Tensor:
    """Binomial blur applied ``passes`` times (a Gaussian of growing width)."""
    f = setup_filter([1, 4, 6, 4, 1])
    for _ in range(passes):
        images = filter2d(images, f, padding=0)
    return images


# --- the distance -------------------------------------------------------------------------------

def test_identical_sets_score_zero_and_results_are_deterministic() -> None:
    images = blob_images(16, 32, seed=0)
    same = sliced_wasserstein(images, images.clone(), **FAST)
    assert same.mean == 0.0 and all(d == 0.0 for d in same.per_level.values())
    assert same.num_images == 16

    other = blob_images(16, 32, seed=1)
    first = sliced_wasserstein(images, other, **FAST, seed=3)
    again = sliced_wasserstein(images, other, **FAST, seed=3)
    assert first == again
    assert first.mean > 0
    assert first.mean == pytest.approx(sum(first.per_level.values()) / len(first.per_level))


def test_same_distribution_is_much_closer_than_a_different_one() -> None:
    # 64 images: with fewer, the image-to-image variety of the blobs dominates the sampling noise.
    reals = blob_images(64, 32, seed=0)
    same_distribution = sliced_wasserstein(reals, blob_images(64, 32, seed=1), **FAST).mean
    noise = sliced_wasserstein(reals, noise_images(64, 32, seed=2), **FAST).mean
    assert same_distribution * 3 < noise, (same_distribution, noise)


def test_distance_grows_with_blur_and_desaturation() -> None:
    # Degraded copies of the reals: the shared patch positions leave only the degradation to measure.
    reals = blob_images(16, 32, seed=0)
    blurred = [sliced_wasserstein(reals, blur(reals, passes), **FAST).mean for passes in (1, 3, 9)]
    assert 0 < blurred[0] < blurred[1] < blurred[2], blurred

    # A set-wide per-channel gain/offset is normalised away (as in the original metric), but
    # mixing the channels towards grey changes the patch statistics.
    gray = reals.mean(dim=1, keepdim=True)
    desaturated = [sliced_wasserstein(reals, (1 - t) * reals + t * gray, **FAST).mean for t in (0.3, 0.6, 0.9)]
    assert 0 < desaturated[0] < desaturated[1] < desaturated[2], desaturated
    shifted = sliced_wasserstein(reals, 0.5 * reals + 0.2, **FAST).mean
    assert shifted < 1e-2, shifted


def test_uint8_and_signed_float_inputs_agree() -> None:
    reals_u8 = to_uint8(blob_images(8, 32, seed=0))
    fakes_u8 = to_uint8(noise_images(8, 32, seed=1))
    as_float = lambda u8: u8.float() / 127.5 - 1  # noqa: E731
    reference = sliced_wasserstein(reals_u8, fakes_u8, **FAST)
    assert sliced_wasserstein(as_float(reals_u8), as_float(fakes_u8), **FAST) == reference
    mixed = sliced_wasserstein(reals_u8, as_float(fakes_u8), **FAST)
    assert mixed.per_level == pytest.approx(reference.per_level, rel=1e-5)


def test_pyramid_levels_and_reconstruction() -> None:
    images = blob_images(2, 64, seed=0) + 0.1 * noise_images(2, 64, seed=1)
    assert set(sliced_wasserstein(images, images, **FAST).per_level) == {64, 32, 16}
    assert set(sliced_wasserstein(images[:, :, :32, :32], images[:, :, :32, :32], **FAST).per_level) == {32, 16}

    pyramid = laplacian_pyramid(images)
    assert {res: tuple(level.shape) for res, level in pyramid.items()} == {
        64: (2, 3, 64, 64), 32: (2, 3, 32, 32), 16: (2, 3, 16, 16)}
    # Collapsing the pyramid (upsample the coarser image, add the band) gives the image back.
    f = setup_filter([1, 4, 6, 4, 1])
    rebuilt = pyramid[16]
    for res in (32, 64):
        rebuilt = pyramid[res] + metrics._pyr_up(rebuilt, f)
    assert torch.allclose(rebuilt, images, atol=1e-5)
    # Reflected borders: a flat image has no band-pass content anywhere, edges included.
    flat = laplacian_pyramid(torch.full((1, 3, 32, 32), 0.25))
    assert flat[32].abs().max() < 1e-6 and torch.allclose(flat[16], torch.full_like(flat[16], 0.25))


def test_descriptors_do_not_depend_on_batching() -> None:
    images = to_uint8(blob_images(10, 32, seed=0))
    whole = swd_descriptors(images, patches_per_image=8, chunk_size=64)
    chunked = swd_descriptors(images, patches_per_image=8, chunk_size=3)
    streamed = swd_descriptors(iter([images[:1], images[1:7], images[7:]]), patches_per_image=8)
    assert whole.num_images == streamed.num_images == 10
    for res, desc in whole.per_level.items():
        assert desc.shape == (10 * 8, 3 * 7 * 7)
        assert torch.allclose(desc, chunked.per_level[res], atol=1e-6)
        assert torch.allclose(desc, streamed.per_level[res], atol=1e-6)


def test_invalid_inputs_raise_clear_errors() -> None:
    images = blob_images(4, 32, seed=0)
    with pytest.raises(ValueError, match="same count and size"):
        sliced_wasserstein(images, images[:3])
    with pytest.raises(ValueError, match="same count and size"):
        sliced_wasserstein(images, blob_images(4, 64, seed=0))
    with pytest.raises(ValueError, match=r"\[N, 3, R, R\]"):
        sliced_wasserstein(images[:, :1], images[:, :1])
    with pytest.raises(ValueError, match="uint8"):
        sliced_wasserstein(images.to(torch.int32), images.to(torch.int32))
    with pytest.raises(ValueError, match="min_resolution"):
        sliced_wasserstein(images[:, :, :8, :8], images[:, :, :8, :8])


# --- the trainer-facing metric ------------------------------------------------------------------

class ListDataset:
    """Stand-in for the trainer's dataset: a list of (uint8 [3, R, R], float32 label [25])."""

    def __init__(self, images: torch.Tensor):
        self.items = [(img, torch.arange(25, dtype=torch.float32) * 0.01 * i) for i, img in enumerate(images)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.items[index]


class FileDataset(ListDataset):
    """Like training.dataset.ImageLabelDataset: has path, resolution, get_label; counts image reads."""

    def __init__(self, images: torch.Tensor, path: str):
        super().__init__(images)
        self.path, self.resolution, self.image_reads = path, images.shape[-1], 0

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.image_reads += 1
        return super().__getitem__(index)

    def get_label(self, index: int) -> torch.Tensor:
        return self.items[index][1]


class StandInGenerator(nn.Module):
    """Returns the dataset's images in order ("copies") or uniform noise, at ``out_resolution``."""

    def __init__(self, dataset: ListDataset, copies: bool, out_resolution: int):
        super().__init__()
        self.z_dim = 8
        self.images = torch.stack([img for img, _ in dataset.items]).float() / 127.5 - 1
        self.copies, self.out_resolution = copies, out_resolution
        self.next_copy = 0

    def forward(self, z: torch.Tensor, c: torch.Tensor, truncation_psi: float = 1.0,
                noise_mode: str = "random") -> dict[str, torch.Tensor]:
        assert not torch.is_grad_enabled() and noise_mode == "const" and truncation_psi == 0.7
        assert z.shape == (z.shape[0], self.z_dim) and c.shape == (z.shape[0], 25)
        if self.copies:
            picks = torch.arange(self.next_copy, self.next_copy + z.shape[0]) % len(self.images)
            self.next_copy += z.shape[0]
            images = self.images[picks]
        else:
            gen = torch.Generator().manual_seed(int(z[0, 0].abs() * 1e6))
            images = torch.rand(z.shape[0], 3, 32, 32, generator=gen) * 2 - 1
        return {"image": torch.nn.functional.interpolate(images, size=self.out_resolution, mode="nearest")}


def test_swd_metric_end_to_end() -> None:
    # num_images == len(dataset): the reals are the whole dataset, and so are the copies.
    dataset = ListDataset(to_uint8(blob_images(24, 32, seed=0)))
    options = MetricOptions(num_images=24, batch=5, seed=1, truncation_psi=0.7)
    copies = compute_metrics(["swd"], StandInGenerator(dataset, copies=True, out_resolution=32), dataset, options)
    assert list(copies) == ["swd", "swd/16", "swd/32"]
    assert copies["swd"] == pytest.approx((copies["swd/16"] + copies["swd/32"]) / 2)
    # The noise generator renders at 64px: the metric resizes to the dataset's 32px.
    noise = METRICS["swd"](StandInGenerator(dataset, copies=False, out_resolution=64), dataset, options)
    assert list(noise) == list(copies)
    assert copies["swd"] * 4 < noise["swd"], (copies, noise)
    assert METRICS["swd"](StandInGenerator(dataset, copies=True, out_resolution=32), dataset, options) == copies


def test_swd_metric_caches_real_descriptors_per_dataset_path() -> None:
    metrics.clear_metric_cache()
    dataset = FileDataset(to_uint8(blob_images(12, 32, seed=0)), path="/data/blobs.zip")
    generator = StandInGenerator(dataset, copies=False, out_resolution=32)
    options = MetricOptions(num_images=8, batch=3, truncation_psi=0.7)
    first = METRICS["swd"](generator, dataset, options)
    assert dataset.image_reads == 8  # the reals only: poses come from get_label
    # Second call: reals from the cache, so no image is read, and the score is the same.
    assert METRICS["swd"](generator, dataset, options) == first
    assert dataset.image_reads == 8
    # Another seed is another sample of reals.
    METRICS["swd"](generator, dataset, MetricOptions(num_images=8, batch=3, seed=5, truncation_psi=0.7))
    assert dataset.image_reads == 16 and len(metrics._REAL_DESCRIPTOR_CACHE) == 2
    metrics.clear_metric_cache()


def test_unknown_metric_name_is_rejected() -> None:
    dataset = ListDataset(to_uint8(blob_images(2, 32, seed=0)))
    with pytest.raises(ValueError, match=r"'fid50k'.*known: swd"):
        compute_metrics(["swd", "fid50k"], StandInGenerator(dataset, True, 32), dataset, MetricOptions(num_images=2))
