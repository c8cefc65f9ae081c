"""Procedural scenes with exact ground truth (training/synthetic.py)."""

from __future__ import annotations

import io
import json
import math
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from ops.camera import FFHQ_FOCAL, SHAPENET_FOCAL, generate_rays, intrinsics_from_focal, orbit_pose, pack_label, unpack_label
from ops.normals import unproject_depth
from training.synthetic import (
    SPECS,
    TraceConfig,
    decode_depth,
    decode_normals,
    encode_depth,
    encode_normals,
    generate,
    geometry_member,
    read_geometry,
    render,
    sample_cameras,
    sample_scenes,
    scene_sdf,
    sphere_scene,
    write_synthetic_dataset,
)

RES = 32


@pytest.fixture(scope="module")
def heads_zip(tmp_path_factory):
    path = tmp_path_factory.mktemp("synthetic") / "heads.zip"
    write_synthetic_dataset(path, "heads", count=4, resolution=RES, seed=3, batch=3)
    return path


@pytest.fixture(scope="module")
def objects_zip(tmp_path_factory):
    path = tmp_path_factory.mktemp("synthetic") / "objects.zip"
    write_synthetic_dataset(path, "objects", count=3, resolution=RES, seed=3, batch=2)
    return path


def _labels(zip_path) -> dict[str, torch.Tensor]:
    with zipfile.ZipFile(zip_path) as zf:
        meta = json.loads(zf.read("dataset.json"))
    return {name: torch.tensor(values, dtype=torch.float32) for name, values in meta["labels"]}


def _png(zip_path, name) -> np.ndarray:
    with zipfile.ZipFile(zip_path) as zf, Image.open(io.BytesIO(zf.read(name))) as img:
        return np.array(img)


# --- analytic sphere ----------------------------------------------------------------------------


def test_sphere_depth_and_normals_match_ray_sphere_intersection():
    center, radius = torch.tensor([0.05, -0.04, 0.1]), 0.28
    scene = sphere_scene(center.tolist(), radius)
    label = pack_label(orbit_pose(0.3, -0.2, 2.7, (0.0, 0.0, 0.2)), intrinsics_from_focal(FFHQ_FOCAL))
    res = 48
    cfg = TraceConfig()
    out = render(scene, label, res, cfg)

    cam2world, intrinsics = unpack_label(label)
    o, d = generate_rays(cam2world, intrinsics, res)
    oc = o[0] - center
    b = (oc * d[0]).sum(-1)
    disc = b * b - ((oc * oc).sum(-1) - radius * radius)
    t_true = -b - disc.clamp_min(0).sqrt()
    # cos(incidence) = sqrt(disc) / radius; sphere tracing's depth error is ~eps / cos.
    cos_inc = disc.clamp_min(0).sqrt() / radius
    depth, mask = out["depth"].reshape(-1), out["mask"].reshape(-1)

    clear_hit = cos_inc > 0.2
    assert clear_hit.sum() > 300
    assert mask[clear_hit].all()
    # Rays passing more than hit_eps outside the sphere are background.
    miss_dist = (oc + b[:, None] * -d[0]).norm(dim=-1) - radius  # distance of the ray from the surface
    assert not mask[miss_dist > 2 * cfg.hit_eps].any()
    # Converged |sdf| < converge_eps, so depth error < converge_eps / cos <= 5 * 5e-5.
    err = (depth - t_true)[clear_hit].abs()
    assert err.max() < 5 * cfg.converge_eps + 1e-5, err.max()
    assert (depth[~mask] == 0).all()

    # Normals: central differences of an exact sphere SDF are radial up to O(h^2) (about 1e-6).
    pts = o[0] + depth[:, None] * d[0]
    n_true = torch.nn.functional.normalize(pts - center, dim=-1)
    n = out["normals"][0].permute(1, 2, 0).reshape(-1, 3)
    cos = (n[clear_hit] * n_true[clear_hit]).sum(-1)
    assert (cos > math.cos(1e-3)).all()
    assert torch.allclose(n[mask].norm(dim=-1), torch.ones(int(mask.sum())), atol=1e-5)


# --- labels and cameras -------------------------------------------------------------------------


def test_labels_reproduce_camera_and_image(heads_zip):
    labels = _labels(heads_zip)
    names = sorted(labels)
    indices = [int(n[3:11]) for n in names]
    expected, yaw, pitch = sample_cameras("heads", 3, indices)
    stacked = torch.stack([labels[n] for n in names])
    assert torch.equal(stacked, expected)  # JSON float round trip is exact for float32
    cam2world, intrinsics = unpack_label(stacked)
    assert torch.allclose(cam2world, orbit_pose(yaw, pitch, 2.7, (0.0, 0.0, 0.2)))
    assert torch.allclose(cam2world[:, :3, 3].norm(dim=-1), torch.full((len(names),), 2.7), atol=1e-5)
    k = intrinsics_from_focal(FFHQ_FOCAL)
    assert torch.equal(intrinsics, k.expand_as(intrinsics))
    assert torch.all(intrinsics[:, 0, 2] == 0.5) and torch.all(intrinsics[:, 1, 2] == 0.5)

    # Re-render from the labels alone: identical 8-bit images.
    out = render(sample_scenes("heads", 3, indices), stacked, RES)
    rgb = (out["rgb"].permute(0, 2, 3, 1).numpy() * 255.0 + 0.5).astype(np.uint8)
    for j, name in enumerate(names):
        assert np.array_equal(rgb[j], _png(heads_zip, name))


def test_object_cameras_surround_and_use_shapenet_rig():
    labels, yaw, pitch = sample_cameras("objects", 0, range(64))
    cam2world, intrinsics = unpack_label(labels)
    assert torch.allclose(cam2world[:, :3, 3].norm(dim=-1), torch.full((64,), 1.7), atol=1e-5)
    assert torch.all(intrinsics[:, 0, 0] == torch.tensor(SHAPENET_FOCAL, dtype=torch.float32))
    # All eight 45-degree yaw sectors are visited, and cameras are mostly above (y > 0).
    sectors = set(((yaw + math.pi) // (math.pi / 4)).long().tolist())
    assert sectors == set(range(8))
    assert (cam2world[:, 1, 3] > 0).float().mean() > 0.7

    heads_labels, hyaw, hpitch = sample_cameras("heads", 0, range(64))
    assert hyaw.abs().mean() < 0.35 and hyaw.abs().max() <= 0.8 and hpitch.abs().max() <= 0.4


# --- encodings ----------------------------------------------------------------------------------


def test_encoding_round_trip_within_quantisation():
    rng = np.random.default_rng(0)
    near, far = 1.8, 3.6
    depth = rng.uniform(near, far, (20, 20)).astype(np.float32)
    mask = rng.uniform(size=(20, 20)) > 0.3
    decoded = decode_depth(encode_depth(depth, mask, near, far), near, far)
    step = (far - near) / 65534
    # Half a quantisation step plus float32 rounding of values near 3.6.
    assert np.abs(decoded - depth)[mask].max() <= step / 2 + 1e-6
    assert (decoded[~mask] == 0).all()

    n = rng.normal(size=(20, 20, 3))
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    dn, dmask = decode_normals(encode_normals(n.astype(np.float32), mask))
    assert np.array_equal(dmask, mask)
    # Each component is off by <= 0.5/255 before renormalising: angle <= sqrt(3) * 0.5/255 * 2.
    angle = np.arccos(np.clip((dn * n).sum(-1), -1, 1))[mask]
    assert angle.max() < 0.007, angle.max()


def test_zip_geometry_matches_render(heads_zip):
    labels = _labels(heads_zip)
    out = generate("heads", 3, [1], RES)
    depth, normals, mask = read_geometry(heads_zip, "img00000001.png")
    spec = SPECS["heads"]
    step = (spec.depth_far - spec.depth_near) / 65534
    assert np.array_equal(mask, out["mask"][0, 0].numpy())
    assert np.abs(depth - out["depth"][0, 0].numpy()).max() <= step / 2 + 1e-6
    n_true = out["normals"][0].permute(1, 2, 0).numpy()
    assert np.arccos(np.clip((normals * n_true).sum(-1), -1, 1))[mask].max() < 0.007
    assert torch.equal(labels["img00000001.png"], out["labels"][0])


# --- determinism and variety --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["heads", "objects"])
def test_sample_independent_of_batching(kind):
    single = generate(kind, 7, [5], 24)
    batch = generate(kind, 7, [3, 4, 5, 6, 9], 24)
    for key in ("rgb", "depth", "normals", "mask", "labels"):
        assert torch.equal(single[key][0], batch[key][2]), key
    other = generate(kind, 8, [5], 24)
    assert not torch.equal(single["rgb"], other["rgb"])


def test_zip_sample_independent_of_count_and_batch(tmp_path, heads_zip):
    path = tmp_path / "h.zip"
    write_synthetic_dataset(path, "heads", count=2, resolution=RES, seed=3, batch=1, geometry=False)
    with zipfile.ZipFile(path) as a, zipfile.ZipFile(heads_zip) as b:
        assert a.read("img00000001.png") == b.read("img00000001.png")
        assert not any(n.startswith("geometry/") for n in a.namelist())


def _iou(masks: torch.Tensor) -> torch.Tensor:
    m = masks.reshape(masks.shape[0], -1).float()
    inter = m @ m.T
    union = m.sum(1)[:, None] + m.sum(1)[None, :] - inter
    iou = inter / union
    return iou[~torch.eye(len(m), dtype=torch.bool)]


@pytest.fixture(scope="module")
def sixteen():
    return {kind: generate(kind, 0, range(16), RES) for kind in ("heads", "objects")}


@pytest.mark.parametrize("kind,max_mean_iou", [("heads", 0.85), ("objects", 0.5)])
def test_variety(sixteen, kind, max_mean_iou):
    out = sixteen[kind]
    iou = _iou(out["mask"])
    assert iou.mean() < max_mean_iou and iou.max() < 0.995, (iou.mean(), iou.max())
    fg = out["mask"].float()
    mean_color = (out["rgb"] * fg).sum((2, 3)) / fg.sum((2, 3))
    assert mean_color.std(0).mean() > 0.05
    assert (fg.mean((1, 2, 3)) > 0.03).all()  # nothing is empty


@pytest.mark.parametrize("kind,min_std", [("heads", 0.04), ("objects", 0.06)])
def test_geometry_is_3d_and_on_the_zero_level(sixteen, kind, min_std):
    out = sixteen[kind]
    depth, mask = out["depth"], out["mask"]
    stds = torch.stack([depth[i][mask[i]].std() for i in range(16)])
    assert (stds > min_std).all(), stds

    # Re-project the *encoded* depth with the label and evaluate the scene's SDF there.
    spec = SPECS[kind]
    code = encode_depth(depth[:, 0].numpy(), mask[:, 0].numpy(), spec.depth_near, spec.depth_far)
    decoded = torch.from_numpy(decode_depth(code, spec.depth_near, spec.depth_far))[:, None]
    cam2world, intrinsics = unpack_label(out["labels"])
    pts = unproject_depth(decoded, cam2world, intrinsics)  # [N, H, W, 3]
    image = torch.arange(16)[:, None, None].expand(16, RES, RES)
    sel = mask[:, 0]
    sdf = scene_sdf(sample_scenes(kind, 0, range(16)), pts[sel], image[sel]).abs()
    # Hits satisfy |sdf| < hit_eps (2e-3, grazing rays); quantisation moves points by < 1e-4.
    assert sdf.max() < TraceConfig().hit_eps + 1e-4, sdf.max()
    assert sdf.median() < 1e-4


# --- EG3D zip format ----------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["heads_zip", "objects_zip"])
def test_zip_is_eg3d_format(request, which):
    path = request.getfixturevalue(which)
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        meta = json.loads(zf.read("dataset.json"))
        images = sorted(n for n in zf.namelist() if "/" not in n and n.endswith(".png"))
        assert [name for name, _ in meta["labels"]] == images
        assert all(len(v) == 25 and all(isinstance(x, float) for x in v) for _, v in meta["labels"])
        sizes = set()
        for name in images:
            with Image.open(io.BytesIO(zf.read(name))) as img:
                assert img.mode == "RGB"
                sizes.add(img.size)
            with np.load(io.BytesIO(zf.read(geometry_member(name))), allow_pickle=False) as gt:
                assert gt["depth"].dtype == np.uint16 and gt["depth"].shape == (RES, RES)
                assert gt["normals"].dtype == np.uint8 and gt["normals"].shape == (RES, RES, 4)
        # EG3D's loader takes every image file for a training image: only the training images may be PNGs.
        assert [n for n in zf.namelist() if n.lower().endswith((".png", ".jpg", ".jpeg"))] == images
        assert sizes == {(RES, RES)}
        geo = meta["geometry"]
        assert geo["depth"]["near"] < geo["depth"]["far"] and geo["normals"]["space"] == "world"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # the temporary file was renamed away
