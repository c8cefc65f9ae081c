"""EG3D-format datasets: loading, validation errors, sampling, the folder tool and mirrored cameras."""

from __future__ import annotations

import io
import json
import math
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import train
from ops.camera import LABEL_DIM, mirror_label, orbit_label
from training.dataset import DatasetError, ImageLabelDataset, InfiniteSampler, write_dataset_zip
from training.synthetic import write_synthetic_dataset

RES = 16


def _pixels(index: int, res: int = RES) -> np.ndarray:
    """[res, res, 3] uint8 test image, different for every index."""
    return np.random.RandomState(index).randint(0, 256, (res, res, 3), dtype=np.uint8)


def _label(index: int) -> list[float]:
    """A 25-float FFHQ-style orbit label, different for every index."""
    return orbit_label(0.1 * index - 0.3, 0.05 * index)[0].tolist()


def _make_folder(root: Path, names: list[str], labels: dict[str, list] | None = None) -> dict[str, np.ndarray]:
    """Write PNGs ``names`` (pixels from their position) and dataset.json; returns name -> pixels."""
    root.mkdir(parents=True, exist_ok=True)
    images = {}
    for i, name in enumerate(names):
        images[name] = _pixels(i)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[name]).save(root / name)
    labels = {name: _label(i) for i, name in enumerate(names)} if labels is None else labels
    (root / "dataset.json").write_text(json.dumps({"labels": [[n, v] for n, v in labels.items()]}))
    return images


def _zip_folder(root: Path, out: Path, compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(out, "w", compression=compression) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(root).as_posix())
    return out


NAMES = ["img0.png", "img1.png", "img2.png", "sub/img3.png", "sub/img4.png", "sub/img5.png"]


@pytest.fixture()
def folder(tmp_path) -> Path:
    _make_folder(tmp_path / "faces", NAMES)
    return tmp_path / "faces"


@pytest.mark.parametrize("as_zip", [False, True])
def test_loads_pixels_and_labels(tmp_path, as_zip):
    root = tmp_path / "faces"
    images = _make_folder(root, NAMES)
    # A grayscale image is accepted and repeated into RGB.
    gray = _pixels(9)[:, :, 0]
    Image.fromarray(gray).save(root / "sub" / "img5.png")
    images["sub/img5.png"] = np.repeat(gray[:, :, None], 3, axis=2)
    path = _zip_folder(root, tmp_path / "faces.zip") if as_zip else root

    ds = ImageLabelDataset(path)
    assert (ds.name, ds.resolution, ds.num_channels, ds.label_dim, ds.has_labels) == ("faces", RES, 3, 25, True)
    assert ds.image_names == sorted(NAMES) and len(ds) == 6
    assert ds.labels.shape == (6, LABEL_DIM) and ds.labels.dtype == np.float32
    for i, name in enumerate(ds.image_names):
        image, label = ds[i]
        assert image.dtype == torch.uint8 and image.shape == (3, RES, RES)
        np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), images[name])
        expected = np.float32(_label(NAMES.index(name)))
        assert label.dtype == torch.float32
        np.testing.assert_array_equal(label.numpy(), expected)
        np.testing.assert_array_equal(ds.get_label(i), expected)
    ds.close()


def test_unlabelled_and_max_images(folder):
    (folder / "dataset.json").unlink()
    ds = ImageLabelDataset(folder, resolution=RES, max_images=2, use_labels=False)
    assert len(ds) == 2 and ds.image_names == NAMES[:2]
    assert ds.label_dim == 0 and not ds.has_labels and ds.labels.shape == (2, 0)
    assert ds[1][1].shape == (0,)


def test_synthetic_zip_with_geometry_members_loads(tmp_path):
    path = tmp_path / "heads.zip"
    write_synthetic_dataset(path, "heads", count=4, resolution=32, seed=1)
    ds = ImageLabelDataset(path, resolution=32)
    assert ds.image_names == [f"img{i:08d}.png" for i in range(4)]  # geometry/*.npz are not images
    with zipfile.ZipFile(path) as zf:
        labels = dict(json.loads(zf.read("dataset.json"))["labels"])
        png = np.array(Image.open(io.BytesIO(zf.read("img00000002.png"))))
    np.testing.assert_array_equal(ds[2][0].permute(1, 2, 0).numpy(), png)
    np.testing.assert_array_equal(ds.labels, np.float32([labels[n] for n in ds.image_names]))


def test_dataloader_workers_and_pickle(folder, tmp_path):
    path = _zip_folder(folder, tmp_path / "faces.zip")
    ds = ImageLabelDataset(path)
    first = ds[0]  # the zip is now open in this process; forked workers must reopen it
    copy = pickle.loads(pickle.dumps(ds))
    assert torch.equal(copy[0][0], first[0])
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, shuffle=False)
    images, labels = zip(*loader)
    assert torch.equal(torch.cat(images), torch.stack([ds[i][0] for i in range(len(ds))]))
    assert torch.equal(torch.cat(labels), torch.from_numpy(ds.labels))


# --- validation errors: each names the offending file -------------------------------------------


def _patch_zip(path: Path, method: int) -> None:
    """Set every member's compression method in both zip headers (to fake an unreadable method)."""
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        start = data.find(signature)
        while start >= 0:
            data[start + offset:start + offset + 2] = method.to_bytes(2, "little")
            start = data.find(signature, start + 4)
    path.write_bytes(bytes(data))


def _set_labels(root: Path, text: str) -> None:
    (root / "dataset.json").write_text(text)


def _labels_json(root: Path) -> list:
    return json.loads((root / "dataset.json").read_text())["labels"]


def _save(root: Path, name: str, array: np.ndarray) -> None:
    Image.fromarray(array).save(root / name)


BROKEN = {
    # case: (break the folder `root` -> path to open, member at fault or None, words in the problem)
    "missing path": (lambda root: root / "nope", None, "no such file or folder"),
    "not a zip": (lambda root: (root / "x.zip").write_text("hello") and root / "x.zip", None, "not a folder or a readable zip"),
    "unreadable compression": (lambda root: (_patch_zip(_zip_folder(root, root.parent / "c.zip"), 9), root.parent / "c.zip")[1],
                               "dataset.json", "compressed with zip method 9"),
    "no images": (lambda root: ([p.unlink() for p in root.rglob("*.png")], root)[1], None, "no PNG or JPEG images"),
    "no dataset.json": (lambda root: ((root / "dataset.json").unlink(), root)[1], None, "no dataset.json"),
    "bad json": (lambda root: (_set_labels(root, "{labels: "), root)[1], "dataset.json", "cannot read JSON"),
    "no labels key": (lambda root: (_set_labels(root, '{"poses": []}'), root)[1], "dataset.json", '"labels" list'),
    "bad entry": (lambda root: (_set_labels(root, '{"labels": [{"img0.png": []}]}'), root)[1], "dataset.json",
                  "labels[0] must be"),
    "short label": (lambda root: (_set_labels(root, json.dumps({"labels": [
        [n, v[:24] if n == "img2.png" else v] for n, v in _labels_json(root)]})), root)[1],
        "dataset.json", "labels[2] (img2.png): label must have 25 numbers, got 24"),
    "nan label": (lambda root: (_set_labels(root, json.dumps({"labels": [
        [n, [math.nan] + v[1:] if n == "img1.png" else v] for n, v in _labels_json(root)]})), root)[1],
        "dataset.json", "labels[1] (img1.png): label value 0 (nan) is not finite"),
    "string in label": (lambda root: (_set_labels(root, json.dumps({"labels": [
        [n, ["1"] + v[1:] if n == "img1.png" else v] for n, v in _labels_json(root)]})), root)[1],
        "dataset.json", "labels[1] (img1.png): label must hold only numbers"),
    "image without label": (lambda root: (_set_labels(root, json.dumps({"labels": _labels_json(root)[:4]})), root)[1],
                            "sub/img4.png", "no label in dataset.json (and 1 more images)"),
    "label without image": (lambda root: (_set_labels(root, json.dumps(
        {"labels": _labels_json(root) + [["gone.png", _label(0)]]})), root)[1],
                            "dataset.json", "names gone.png, which does not exist"),
    "label names non-image": (lambda root: ((root / "notes.txt").write_text("x"), _set_labels(root, json.dumps(
        {"labels": _labels_json(root) + [["notes.txt", _label(0)]]})), root)[2],
        "dataset.json", "names notes.txt, which is not a PNG or JPEG image"),
    "duplicate label": (lambda root: (_set_labels(root, json.dumps(
        {"labels": _labels_json(root) + [_labels_json(root)[1]]})), root)[1],
                        "dataset.json", "a second label for img1.png"),
    "mixed sizes": (lambda root: (_save(root, "sub/img4.png", _pixels(0, 8)), root)[1], "sub/img4.png",
                    "image is 8x8 but img0.png is 16x16"),
    "not square": (lambda root: (_save(root, "img1.png", _pixels(0)[:12]), root)[1], "img1.png",
                   "image is 16x12; images must be square"),
    "rgba": (lambda root: (_save(root, "img2.png", np.dstack([_pixels(2), _pixels(3)[:, :, :1]])), root)[1],
             "img2.png", "image mode RGBA is not supported (need RGB or grayscale L); flatten the alpha channel"),
    "webp": (lambda root: ((root / "extra.webp").write_bytes(b"RIFF"), root)[1], "extra.webp",
             ".webp images are not supported"),
    "not an image": (lambda root: ((root / "img1.png").write_bytes(b"not a png"), root)[1], "img1.png", "cannot read image"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_datasets_name_the_file(folder, case):
    make_broken, member, words = BROKEN[case]
    path = make_broken(folder)
    with pytest.raises(DatasetError) as info:
        ImageLabelDataset(path)
    message = str(info.value)
    prefix = f"{path}:{member}: " if member else f"{path}: "
    assert message.startswith(prefix) and words in message, message
    assert "\n" not in message


def test_resolution_mismatch(folder):
    with pytest.raises(DatasetError, match=r"img0\.png: image is 16x16, expected 32x32$"):
        ImageLabelDataset(folder, resolution=32)


def test_decode_error_at_read_time_names_member(folder, tmp_path):
    png = (folder / "img1.png").read_bytes()
    (folder / "img1.png").write_bytes(png[: len(png) // 2])  # header intact, pixel data truncated
    path = _zip_folder(folder, tmp_path / "data.zip")
    ds = ImageLabelDataset(path)  # headers are fine: only decoding finds it
    ds[0]
    with pytest.raises(DatasetError) as info:
        ds[1]
    assert str(info.value).startswith(f"{path}:img1.png: cannot decode image (")
    # A worker's error keeps its type when DataLoader re-raises it.
    batches = iter(torch.utils.data.DataLoader(ds, batch_size=2, num_workers=1))
    try:
        next(batches)
        pytest.fail("the worker's decode error was not raised")
    except DatasetError as e:
        assert "img1.png: cannot decode image" in str(e)
        e.__traceback__ = None  # frees the loader at `del`, not in a GC pass that waits 5 s for its worker
    del batches


def test_deflated_zip_is_readable(folder, tmp_path):
    ds = ImageLabelDataset(_zip_folder(folder, tmp_path / "deflated.zip", zipfile.ZIP_DEFLATED))
    assert len(ds) == 6 and ds[5][0].shape == (3, RES, RES)


def test_dataset_zip_writer_rejects_bad_input_and_leaves_nothing(tmp_path):
    out = tmp_path / "out.zip"
    with pytest.raises(ValueError, match="25 numbers"):
        with write_dataset_zip(out) as writer:
            writer.add_image("a.png", _pixels(0), _label(0))
            writer.add_image("b.png", _pixels(1), _label(1)[:3])
    with pytest.raises(ValueError, match="written twice"):
        with write_dataset_zip(out) as writer:
            writer.add_image("a.png", _pixels(0), _label(0))
            writer.add_image("a.png", _pixels(1), _label(1))
    assert list(tmp_path.iterdir()) == []


# --- InfiniteSampler ----------------------------------------------------------------------------


def _take(sampler: InfiniteSampler, count: int) -> list[int]:
    stream = iter(sampler)
    return [next(stream) for _ in range(count)]


def test_sampler_stream_is_seeded_permutations():
    expected = np.concatenate([np.random.RandomState(7 + e).permutation(5) for e in range(3)])
    assert _take(InfiniteSampler(5, seed=7), 15) == expected.tolist()


def test_sampler_ranks_are_disjoint_within_a_permutation():
    size, replicas = 12, 3
    per_rank = [_take(InfiniteSampler(size, rank=r, num_replicas=replicas, seed=1), 2 * size // replicas)
                for r in range(replicas)]
    for epoch in range(2):
        chunks = [set(s[epoch * size // replicas:(epoch + 1) * size // replicas]) for s in per_rank]
        assert set().union(*chunks) == set(range(size)) and sum(map(len, chunks)) == size
    # Interleaving the ranks position by position gives back the global stream.
    merged = [per_rank[i % replicas][i // replicas] for i in range(2 * size)]
    assert merged == _take(InfiniteSampler(size, seed=1), 2 * size)


def test_sampler_resume_continues_the_same_stream():
    size, replicas, batch_per_rank, batches = 7, 2, 3, 4  # resume mid-permutation
    for rank in range(replicas):
        full = _take(InfiniteSampler(size, rank, replicas, seed=5), 40)
        position = InfiniteSampler(size, rank, replicas, seed=5).position_after(batches, batch_per_rank)
        assert position == batches * batch_per_rank * replicas
        resumed = _take(InfiniteSampler(size, rank, replicas, seed=5, start=position), 40 - batches * batch_per_rank)
        assert resumed == full[batches * batch_per_rank:]


def test_sampler_rejects_bad_arguments():
    for kwargs in ({"size": 0}, {"size": 3, "rank": 2, "num_replicas": 2}, {"size": 3, "start": -1}):
        with pytest.raises(ValueError):
            InfiniteSampler(**kwargs)


# --- mirrored cameras ---------------------------------------------------------------------------


def test_mirror_label_flips_yaw_and_is_an_involution():
    for yaw, pitch in ((0.4, 0.1), (-0.7, -0.2), (0.0, 0.3)):
        label = orbit_label(yaw, pitch)
        assert (mirror_label(label) - orbit_label(-yaw, pitch)).abs().max() < 1e-6
        assert torch.equal(mirror_label(mirror_label(label)), label)
    label = torch.arange(1.0, 26.0)
    flipped = mirror_label(label)
    negated = {1, 2, 3, 4, 8, 17}  # cam2world (0,1) (0,2) (0,3) (1,0) (2,0); intrinsics skew
    for i in range(25):
        expected = 1 - label[i] if i == 18 else (-label[i] if i in negated else label[i])  # 18: cx
        assert flipped[i] == expected, i


# --- train.py dataset folder --------------------------------------------------------------------


def test_cli_folder_round_trip_with_resize_and_mirror(folder, tmp_path, capsys):
    Image.fromarray(_pixels(1)).save(folder / "img1.jpg")  # a JPEG source is written as img1.png
    (folder / "img1.png").unlink()
    labels = _labels_json(folder)
    _set_labels(folder, json.dumps({"labels": [["img1.jpg" if n == "img1.png" else n, v] for n, v in labels]}))
    out = tmp_path / "out.zip"
    assert train.main(["dataset", "folder", "--source", str(folder), "--out", str(out), "--res", "8", "--mirror"]) == 0
    assert "12 images (6 + 6 mirrored) at 8x8" in capsys.readouterr().out

    ds = ImageLabelDataset(out, resolution=8)
    assert len(ds) == 12 and "img1.png" in ds.image_names and "sub/img3_mirror.png" in ds.image_names
    with zipfile.ZipFile(out) as zf:
        assert {info.compress_type for info in zf.infolist()} == {zipfile.ZIP_STORED}
    source = ImageLabelDataset(folder)
    for name in ("sub/img3.png", "img1.png"):
        index, mirror = ds.image_names.index(name), ds.image_names.index(name[:-4] + "_mirror.png")
        original = source[source.image_names.index(name.replace("img1.png", "img1.jpg"))][0].permute(1, 2, 0).numpy()
        resized = np.asarray(Image.fromarray(original).resize((8, 8), Image.Resampling.LANCZOS))
        np.testing.assert_array_equal(ds[index][0].permute(1, 2, 0).numpy(), resized)
        np.testing.assert_array_equal(ds[mirror][0].numpy(), ds[index][0].numpy()[:, :, ::-1])
        assert torch.equal(ds[mirror][1], mirror_label(ds[index][1]))
    assert np.array_equal(ds.get_label(ds.image_names.index("sub/img3.png")), np.float32(_label(3)))

    # Existing output: refused without --force, replaced with it (no --res keeps pixels exactly).
    assert train.main(["dataset", "folder", "--source", str(folder), "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: {out}: exists (use --force to replace it)\n"
    assert train.main(["dataset", "folder", "--source", str(folder), "--out", str(out), "--force"]) == 0
    again = ImageLabelDataset(out)
    assert len(again) == 6 and again.resolution == RES
    assert torch.equal(again[again.image_names.index("sub/img4.png")][0], source[source.image_names.index("sub/img4.png")][0])


def test_cli_folder_errors(folder, tmp_path, capsys):
    out = tmp_path / "out.zip"
    missing = tmp_path / "missing"
    assert train.main(["dataset", "folder", "--source", str(missing), "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: {missing}: no such file or folder\n"
    _save(folder, "sub/img4.png", _pixels(4, 8))
    assert train.main(["dataset", "folder", "--source", str(folder), "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {folder}:sub/img4.png: image is 8x8 but")
    _save(folder, "sub/img4.png", _pixels(4))
    _save(folder, "img0_mirror.png", _pixels(0))
    _set_labels(folder, json.dumps({"labels": _labels_json(folder) + [["img0_mirror.png", _label(0)]]}))
    assert train.main(["dataset", "folder", "--source", str(folder), "--out", str(out), "--res", "8", "--mirror"]) == 2
    assert "would both be written as img0_mirror.png" in capsys.readouterr().err
    assert not out.exists()
