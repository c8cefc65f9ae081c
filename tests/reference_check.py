"""Reproduce official reference fixtures through the public API: ``python -m tests.reference_check DIR [DIR ...]``.

Each DIR is a fixture folder in the layout of ``shared/fixtures/<method>_ref`` (README.md,
config.json, cases.npz and the official checkpoint files). The method is read from config.json's
``method`` (else the folder name before ``_ref``); the checkpoint is opened with
:func:`models.load_generator`, with the settings the file does not hold passed from config.json as
a user would pass them; every case in cases.npz is rendered through the generator's public API
(``mapping``, ``synthesis``, ``sample_mixed``, ``set_truncation_mean``). One line per folder::

    <folder>: <method> cases=<n> max_rel_err=<e> tol=<t> ok|FAIL

with error = max |ours - official| / max(1, max |official|) per output, max_rel_err the largest
and tol that output's tolerance (``-v`` prints every output's error). A method without a checker
prints ``<folder>: <method> UNSUPPORTED`` and, like a FAIL, makes the exit status 1: nothing
passes silently.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

Errors = dict[str, tuple[float, float]]
"""output name -> (relative error, tolerance)."""


def relative_error(ours: torch.Tensor | np.ndarray, official: np.ndarray) -> float:
    """max |ours - official| / max(1, max |official|)."""
    ours_np = ours.detach().cpu().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)
    official = np.asarray(official, dtype=np.float64)
    if ours_np.shape != official.shape:
        raise ValueError(f"shape {ours_np.shape} != official {official.shape}")
    return float(np.abs(ours_np.astype(np.float64) - official).max() / max(1.0, float(np.abs(official).max())))


# --- pi-GAN ----------------------------------------------------------------------------------------

PIGAN_TOLERANCES = {"image": 2e-4, "image_lockview": 2e-4}
"""pi-GAN's README: its importance pass amplifies float32 round-off on the images (compare at 2e-4);
every other output at 1e-4."""


def _pigan_settings(render: dict) -> dict:
    """config.json ``render_options`` as the settings a user passes to ``load_generator``."""
    if render.get("clamp_mode", "relu") != "relu":
        raise ValueError(f"clamp_mode {render['clamp_mode']!r} is not supported")
    if float(render.get("nerf_noise", 0)) != 0:
        raise ValueError("density noise at render time is not reproducible")
    steps = int(render["num_steps"])
    return {
        "fov_degrees": float(render["fov"]), "near": float(render["ray_start"]), "far": float(render["ray_end"]),
        "num_coarse": steps, "num_fine": steps if render.get("hierarchical_sample", False) else 0,
        "last_back": bool(render.get("last_back", False)), "white_back": bool(render.get("white_back", False)),
        "img_resolution": int(render["img_size"]),
    }


def _pigan_polar(render: dict, v_mean: float) -> float:
    """The polar angle pi-GAN's sampler puts the camera at for v_mean."""
    if render.get("sample_dist") == "spherical_uniform":
        return math.acos(1 - 2 * v_mean / math.pi)
    return v_mean


def _case_value(config: dict, i: int, key: str, recorded: torch.Tensor) -> float:
    """A case's setting as the official script received it: config.json's ``cases`` hold the Python
    floats (cases.npz rounds them to float32)."""
    cases = config.get("cases")
    if isinstance(cases, list) and i < len(cases) and isinstance(cases[i], dict) and key in cases[i]:
        return float(cases[i][key])
    return float(recorded)


def _film_case(G, t: dict, cases, i: int, z: torch.Tensor, c: torch.Tensor, psi: float, resolution: int,
               note: Callable[[str, float], None], depth_error: Callable, sigma: Callable) -> torch.Tensor:
    """The outputs pi-GAN's and GRAM's fixtures share for case ``i`` (FiLM mapping raw and truncated,
    image, depth, lock-view image, decoder at the query points), noted; returns the truncated ws.
    ``depth_error``: how depth is compared; ``sigma``: the generator's raw sigma as the fixture records it."""
    from models.scene import RenderOptions

    film = G.mapping_network
    raw_f, raw_p = G.mapping(z, c, truncation_psi=1).chunk(2, dim=-1)
    note("frequencies", relative_error(raw_f.reshape(1, -1), cases[f"{i}_frequencies"]))
    note("phase_shifts", relative_error(raw_p.reshape(1, -1), cases[f"{i}_phase_shifts"]))
    ws = G.mapping(z, c, truncation_psi=psi)
    trunc_f, trunc_p = ws.chunk(2, dim=-1)
    note("trunc_frequencies", relative_error(trunc_f.reshape(1, -1), cases[f"{i}_trunc_frequencies"]))
    note("trunc_phase_shifts", relative_error(trunc_p.reshape(1, -1), cases[f"{i}_trunc_phase_shifts"]))
    out = G.synthesis(ws, c, neural_rendering_resolution=resolution)
    note("image", relative_error(out["image"], cases[f"{i}_image"]))
    note("depth", depth_error(out["image_depth"][:, 0], cases[f"{i}_depth"]))
    locked = G.synthesis(ws, c, neural_rendering_resolution=resolution, options=RenderOptions(lock_view_dependence=True))
    note("image_lockview", relative_error(locked["image"], cases[f"{i}_image_lockview"]))
    ws_query = film.film_ws(t[f"{i}_trunc_frequencies"], t[f"{i}_trunc_phase_shifts"])
    query = G.sample_mixed(t["query_points"], t["query_dirs"], ws_query)
    note("query_rgb", relative_error(query["rgb"], cases[f"{i}_query_rgb"]))
    note("query_sigma", relative_error(sigma(query["sigma"]), cases[f"{i}_query_sigma"]))
    return ws


def check_pigan(folder: Path, config: dict) -> tuple[int, Errors]:
    from models import load_generator
    from ops.camera import fov_to_focal, polar_orbit_label

    render = config["render_options"]
    settings = _pigan_settings(render)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CelebA-or-Cats: the settings below are the folder's own
        G = load_generator(folder / "generator.pth", settings=settings)
    cases = np.load(folder / "cases.npz")
    count = len({k.split("_", 1)[0] for k in cases.files if k.split("_", 1)[0].isdigit()})
    resolution = int(render["img_size"])
    # the official lens as a label (its corner-aligned pixel grid is the imported generator's own)
    focal = fov_to_focal(float(render["fov"]))
    radius = float(G.rendering_kwargs["avg_camera_radius"])
    film = G.mapping_network
    t = {k: torch.from_numpy(np.asarray(cases[k])) for k in cases.files}
    errors: dict[str, float] = {}

    def note(name: str, value: float) -> None:
        errors[name] = max(errors.get(name, 0.0), value)

    with torch.no_grad():
        for i in range(count):
            z, psi = t[f"{i}_z"], _case_value(config, i, "psi", t[f"{i}_psi"])
            h_mean, v_mean = (_case_value(config, i, k, t[f"{i}_{k}"]) for k in ("h_mean", "v_mean"))
            c = polar_orbit_label(h_mean, _pigan_polar(render, v_mean), radius, focal)
            # the official scripts re-estimate the mean on every call: use the recorded one
            G.set_truncation_mean(film.film_ws(t[f"{i}_avg_frequencies"], t[f"{i}_avg_phase_shifts"])[0])
            _film_case(G, t, cases, i, z, c, psi, resolution, note, depth_error=relative_error, sigma=lambda raw: raw)
    return count, {name: (value, PIGAN_TOLERANCES.get(name, 1e-4)) for name, value in errors.items()}


# --- GRAM ------------------------------------------------------------------------------------------

GRAM_TOLERANCES: dict[str, float] = {"manifold_valid": 0.0}
"""GRAM's README states no tolerance beyond its float32-vs-float64 spread (at most 4.3e-5, on query_sigma):
every output at 1e-4; ``manifold_valid``'s error is the fraction of flags that differ (the README
expects 0 flips). Depth is compared where the official one is not NaN."""


def _gram_settings(config: dict) -> dict:
    """config.json's renderer, representation and camera settings as the settings a user passes to
    ``load_generator`` (with ``release='gram-ffhq'``: the fixture is an FFHQ_default of another width)."""
    from models.releases import Manifolds

    gen = config["generator"]
    rep, ren, cam = gen["representation_kwargs"], gen["renderer_kwargs"], config["camera"]
    if rep.get("sigma_clamp_mode", "softplus") != "softplus" or rep.get("rgb_clamp_mode") != "widen_sigmoid":
        raise ValueError("only softplus density and widen_sigmoid colour are supported")
    if ren.get("last_back", False):
        raise ValueError("last_back is not supported for GRAM")
    background = bool(ren.get("background", True))
    manifolds = Manifolds(int(ren["num_manifolds"]), float(ren["levels_start"]), float(ren["levels_end"]),
                          tuple(float(v) for v in rep.get("center", (0, 0, -1.5))), float(rep.get("normalize", 0.24)),
                          float(ren.get("delta", 0.04 if background else 0.02)), background)
    return {"fov_degrees": float(cam["fov"]), "near": float(cam["ray_start"]), "far": float(cam["ray_end"]),
            "num_coarse": int(ren["num_samples"]), "white_back": bool(ren.get("white_back", False)),
            "img_resolution": int(gen["kwargs"]["img_size"]), "lock_view_dependence": False, "manifolds": manifolds}


def check_gram(folder: Path, config: dict) -> tuple[int, Errors]:
    from models import load_generator
    from ops.camera import fov_to_focal, polar_orbit_label

    G = load_generator(folder / "generator.pth", release="gram-ffhq", settings=_gram_settings(config))
    cases = np.load(folder / "cases.npz")
    count = len({k.split("_", 1)[0] for k in cases.files if k.split("_", 1)[0].isdigit()})
    resolution = int(config["generator"]["kwargs"]["img_size"])
    focal = fov_to_focal(float(config["camera"]["fov"]))
    radius = float(G.rendering_kwargs["avg_camera_radius"])
    film = G.mapping_network
    t = {k: torch.from_numpy(np.asarray(cases[k])) for k in cases.files}
    errors: dict[str, float] = {}

    def note(name: str, value: float) -> None:
        errors[name] = max(errors.get(name, 0.0), value)

    def nan_error(ours: torch.Tensor, official: np.ndarray) -> float:
        """relative_error where the official value is finite; where it is NaN (a ray with no weight)
        ours must be finite (such rays sit at their farthest point)."""
        a, b = ours.detach().numpy().astype(np.float64), np.asarray(official, dtype=np.float64)
        if a.shape != b.shape or not np.isfinite(a).all():
            return math.inf
        keep = ~np.isnan(b)
        return relative_error(a[keep], b[keep]) if keep.any() else 0.0

    with torch.no_grad():
        G.set_truncation_mean(film.film_ws(t["avg_frequencies"], t["avg_phase_shifts"])[0])
        for i in range(count):
            z, psi = t[f"{i}_z"], _case_value(config, i, "psi", t[f"{i}_psi"])
            pitch, yaw = (_case_value(config, i, k, t[f"{i}_{k}"]) for k in ("pitch", "yaw"))
            c = polar_orbit_label(yaw, pitch, radius, focal)  # the official camera_origin, looking at the origin
            cam2world = c[:, :16].reshape(-1, 4, 4) @ torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))
            note("cam2world", relative_error(cam2world, cases[f"{i}_cam2world"]))
            note("camera_origin", relative_error(c[:, [3, 7, 11]], cases[f"{i}_camera_origin"]))
            ws = _film_case(G, t, cases, i, z, c, psi, resolution, note, depth_error=nan_error,
                            sigma=G.renderer.activate)  # GramRF applies softplus inside
            note("query_s", relative_error(G.embedder.field(t["query_points"])[..., None], cases[f"{i}_query_s"]))
            hits = G.embedder.intersections(G, c, resolution)
            note("manifold_s", relative_error(hits["values"], cases[f"{i}_manifold_s"]))
            note("manifold_points", relative_error(hits["points"], cases[f"{i}_manifold_points"]))
            note("levels", relative_error(hits["levels"], cases["levels"]))
            note("sorted_depth", relative_error(hits["sorted_depth"], cases[f"{i}_sorted_depth"]))
            weights = G.render_rays(G.planes(ws), hits["origins"], hits["directions"]).weights[..., 0]
            note("sorted_weights", relative_error(weights, cases[f"{i}_sorted_weights"]))
            differ = hits["valid"].numpy() != cases[f"{i}_manifold_valid"].astype(bool)
            note("manifold_valid", float(differ.mean()))
    return count, {name: (value, GRAM_TOLERANCES.get(name, 1e-4)) for name, value in errors.items()}


# --- VolumeGAN -------------------------------------------------------------------------------------

VOLUMEGAN_TOLERANCE = 1e-4
"""Every output at 1e-4. VolumeGAN's README allows 2e-3 on the rendered outputs of cases 1 and 2 (its PE up
to sin(512 p), steep density and deterministic sampler amplify float32 round-off) unless the official order
of operations is followed; the imported generator follows it (``renderer.rays='camera_frame'``, the
official trilinear sampler and instance norm, the unfused modulated MLP), so no output gets more."""


def _volumegan_settings(generator_kwargs: dict) -> dict:
    """config.json's ``ps_cfg`` (the deterministic renderer of the fixture) as the settings a user passes."""
    ps = generator_kwargs["ps_cfg"]
    steps = int(ps["num_steps"])
    return {"fov_degrees": float(ps["fov"]), "near": float(ps["ray_start"]), "far": float(ps["ray_end"]),
            "num_coarse": steps, "num_fine": steps, "radius": float(ps["radius"])}


def opengl_to_label(cam2world: torch.Tensor, focal: float) -> torch.Tensor:
    """[N, 25] label of OpenGL cam2world matrices [N, 4, 4] (columns right, up, backward): our labels are
    OpenCV (right, down, forward)."""
    from ops.camera import intrinsics_from_focal, pack_label

    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=cam2world.dtype))
    return pack_label(cam2world @ flip, intrinsics_from_focal(focal))


def check_volumegan(folder: Path, config: dict) -> tuple[int, Errors]:
    from models import load_generator
    from ops.camera import fov_to_focal, polar_orbit_label

    kwargs = config["generator_kwargs"]
    G = load_generator(folder / "checkpoint.pth", settings=_volumegan_settings(kwargs))
    cases = np.load(folder / "cases.npz")
    count = len({k.split("_", 1)[0] for k in cases.files if k.split("_", 1)[0].isdigit()})
    focal = fov_to_focal(float(kwargs["ps_cfg"]["fov"]))
    nerf_res = int(kwargs["nerf_res"])
    t = {k: torch.from_numpy(np.asarray(cases[k])) for k in cases.files}
    errors: dict[str, float] = {}

    def note(name: str, value: float) -> None:
        errors[name] = max(errors.get(name, 0.0), value)

    with torch.no_grad():
        for i in range(count):
            z, psi, cutoff = t[f"{i}_z"], float(t[f"{i}_psi"]), int(t[f"{i}_trunc_layers"])
            # VolumeGAN's camera is pi-GAN's (yaw = azimuth, pitch = polar angle; frontal pi/2, pi/2)
            c = polar_orbit_label(float(t[f"{i}_yaw"]), float(t[f"{i}_pitch"]), float(kwargs["ps_cfg"]["radius"]), focal)
            note("cam2world", relative_error(c, opengl_to_label(t[f"{i}_cam2world"], focal).numpy()))
            note("w", relative_error(G.mapping(z, c)[:, 0], cases[f"{i}_w"]))
            ws = G.mapping(z, c, truncation_psi=psi, truncation_cutoff=cutoff)
            note("wp", relative_error(ws, cases[f"{i}_wp"]))
            scene = G.planes(ws)
            note("volume", relative_error(scene.features, cases[f"{i}_volume"]))
            out = G.synthesis(ws, c, neural_rendering_resolution=nerf_res)
            note("image", relative_error(out["image"], cases[f"{i}_image"]))
            note("depth", relative_error(out["image_depth"][:, 0], cases[f"{i}_depth"]))
            origins, directions, camera_frame = G.camera_rays(c, nerf_res)
            composite = G.render_rays(scene, origins, directions, camera_frame=camera_frame)
            features = composite.features.permute(0, 2, 1).reshape(1, -1, nerf_res, nerf_res)
            note("feature2d", relative_error(features, cases[f"{i}_feature2d"]))
            # the 2D synthesis alone, from the official feature map (not round-off sensitive: 1e-4)
            image, _ = G.superresolve(torch.from_numpy(cases[f"{i}_feature2d"]), ws)
            note("image_from_official_feature2d", relative_error(image, cases[f"{i}_image"]))
            weights_sum = composite.weights.sum(dim=(-2, -1)).reshape(1, nerf_res, nerf_res)
            note("weights_sum", relative_error(weights_sum, cases[f"{i}_weights_sum"]))
            points = t["query_pts"][None]
            query = G.sample_mixed(points, torch.zeros_like(points), ws)
            note("net_sigma", relative_error(query["sigma"][0], cases[f"{i}_net_sigma"]))
            note("net_feat", relative_error(query["rgb"][0], cases[f"{i}_net_feat"]))
    return count, {name: (value, VOLUMEGAN_TOLERANCE) for name, value in errors.items()}


# --- StyleSDF --------------------------------------------------------------------------------------

def _stylesdf_label(cam2world: torch.Tensor, focal: float, resolution: int) -> torch.Tensor:
    """The official [R | T] (OpenGL camera) and focal in pixels as our 25-float label (OpenCV camera,
    intrinsics normalised by the image size). The world frames agree (y up, frontal camera on +z)."""
    from ops.camera import pack_label

    pose = torch.eye(4).repeat(cam2world.shape[0], 1, 1)
    pose[:, :3, :4] = cam2world.float()
    pose = pose @ torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))
    f = float(focal) / resolution
    intrinsics = torch.tensor([[f, 0.0, 0.5], [0.0, f, 0.5], [0.0, 0.0, 1.0]])
    return pack_label(pose, intrinsics.expand(cam2world.shape[0], 3, 3))


def _stylesdf_settings(config: dict) -> dict:
    """config.json's ``opt.rendering`` / ``opt.camera`` as the settings a user passes to ``load_generator``."""
    rendering, camera, model = config["opt"]["rendering"], config["opt"]["camera"], config["opt"]["model"]
    if float(rendering.get("raw_noise_std", 0)) != 0 or rendering.get("no_sdf") or rendering.get("no_offset_sampling"):
        raise ValueError("density noise, no_sdf and no_offset_sampling are not supported")
    if not rendering.get("static_viewdirs", True):
        raise ValueError("only static_viewdirs is supported")
    radius = float(camera["dist_radius"])
    return {"fov_degrees": 2 * float(camera["fov"]), "near": 1 - radius, "far": 1 + radius,
            "num_coarse": int(rendering["N_samples"]), "num_fine": 0,
            "last_back": bool(rendering.get("force_background", False)),
            "img_resolution": int(model["size"]),
            "neural_rendering_resolution": int(model["renderer_spatial_output_dim"])}


def check_stylesdf(folder: Path, config: dict) -> tuple[int, Errors]:
    from models import load_generator
    from ops.camera import generate_rays

    settings = _stylesdf_settings(config)
    r = settings["neural_rendering_resolution"]
    renderer = load_generator(folder / "vol_renderer.pt", release="stylesdf-ffhq-vol-renderer", settings=settings)
    full = None
    if (folder / "full_model.pt").exists():
        full = load_generator(folder / "full_model.pt", release="stylesdf-ffhq1024", settings=settings)
    cases = np.load(folder / "cases.npz")
    count = len({k.split("_", 1)[0] for k in cases.files if k.split("_", 1)[0].isdigit()})
    t = {k: torch.from_numpy(np.asarray(cases[k])) for k in cases.files}
    errors: dict[str, float] = {}

    def note(name: str, value: float) -> None:
        errors[name] = max(errors.get(name, 0.0), value)

    def ws_mean(G) -> torch.Tensor:
        """The stored truncation means as the generator's ws mean (renderer w | decoder ws)."""
        mean = t["mean_latent_renderer"].expand(G.num_ws, -1).clone()
        slots = G.ws_slices[2]
        if slots.stop > slots.start:
            decoder = t["mean_latent_decoder"].expand(G.upsampler.net.n_latent, -1)
            mean[slots] = G.upsampler.pack_ws(decoder[None])[0]
        return mean

    query = t["query_net_in"].float()
    with torch.no_grad():
        for G in (renderer, full):
            if G is not None:
                G.set_truncation_mean(ws_mean(G))
        for i in range(count):
            z, psi = t[f"{i}_z"], float(t[f"{i}_psi"])
            c = _stylesdf_label(t[f"{i}_cam2world"], float(t[f"{i}_focal"].reshape(())), r)
            ws = renderer.mapping(z, c, truncation_psi=psi)
            note("w_renderer", relative_error(ws[:, 0], cases[f"{i}_w_renderer"]))
            scene = renderer.planes(ws)
            composite = renderer.render_composite(scene, c, r)
            thumb = composite.features[..., :3].permute(0, 2, 1).reshape(1, 3, r, r)
            note("thumb_renderer", relative_error(thumb, cases[f"{i}_thumb"]))
            origins, directions = generate_rays(*_unpack(c), r)
            xyz = (origins + directions * composite.depth).permute(0, 2, 1).reshape(1, 3, r, r)
            note("xyz", relative_error(xyz, cases[f"{i}_xyz"]))
            mask = composite.weights[:, :, -1, 0].reshape(1, 1, r, r)
            note("mask", relative_error(mask, cases[f"{i}_mask"]))
            scale = float(renderer.embedder.coordinate_scale)
            points, dirs = (query[:, :3] / scale)[None], query[:, 3:][None]
            out = renderer.sample_mixed(points, dirs, ws)
            note("net_rgb", relative_error(torch.logit(out["rgb"][0, :, :3].double()), cases[f"{i}_net_rgb"]))
            note("net_sdf", relative_error(out["sdf"][0], cases[f"{i}_net_sdf"]))
            note("net_feat", relative_error(out["rgb"][0, :, 3:], cases[f"{i}_net_feat"]))
            if full is not None:
                ws_full = full.mapping(z, c, truncation_psi=psi)
                note("w_renderer_full", relative_error(ws_full[:, 0], cases[f"{i}_w_renderer"]))
                decoder_ws = full.upsampler.unpack(ws_full[:, full.ws_slices[2]])
                note("w_decoder", relative_error(decoder_ws, cases[f"{i}_w_decoder"]))
                image = full.synthesis(ws_full, c, noise_mode="const")
                note("thumb", relative_error(image["image_raw"], cases[f"{i}_thumb"]))
                note("image", relative_error(image["image"], cases[f"{i}_image"]))
    return count, {name: (value, 1e-4) for name, value in errors.items()}


# --- GRAF ------------------------------------------------------------------------------------------

GRAF_RELEASE_BY_DATA = {"carla": "graf-carla64", "celebA": "graf-celeba64", "celebA_hq": "graf-celebahq256",
                        "cats": "graf-cats64", "cub": "graf-cub64"}
"""The release of a GRAF yaml's ``data:type`` (the fixture's sizes and settings are passed over it)."""


def _graf_radii(radius) -> tuple[float, float]:
    """(low, high) of a GRAF yaml radius: one number, or a range ('9.5,10.5' or a list)."""
    values = [float(v) for v in (radius.split(",") if isinstance(radius, str) else
                                 radius if isinstance(radius, (list, tuple)) else [radius])]
    return min(values), max(values)


def _graf_settings(config: dict) -> tuple[str, dict]:
    """(release, settings) a user passes for a GRAF yaml (``yaml_config``): the data type's release with the
    yaml's camera (a radius range renders at its largest radius, as ``eval.py``), ray range, samples,
    background and image size."""
    data, nerf = config["yaml_config"]["data"], config["yaml_config"]["nerf"]
    if data.get("orthographic", False):
        raise ValueError("orthographic GRAF cameras are not supported")
    low, high = _graf_radii(data["radius"])
    release = GRAF_RELEASE_BY_DATA.get(data["type"], "graf-carla64") if nerf.get("use_viewdirs", True) \
        else "graf-cub64"
    return release, {"fov_degrees": float(data["fov"]), "near": float(data["near"]), "far": float(data["far"]),
                     "num_coarse": int(nerf["N_samples"]), "num_fine": int(nerf.get("N_importance", 0)),
                     "white_back": bool(data.get("white_bkgd", True)), "img_resolution": int(data["imsize"]),
                     "radius": high, "radius_max": high if high > low else None}


def _graf_to_official_world(x: torch.Tensor) -> torch.Tensor:
    """Our world vectors [..., 3] in GRAF's z-up world (what ``embedder.world_axes`` (2, 0, 1) reads)."""
    from models.methods.graf import GRAF_AXES

    return x[..., list(GRAF_AXES)]


def check_graf(folder: Path, config: dict) -> tuple[int, Errors]:
    from models import load_generator
    from models.methods.graf import GRAF_AXES
    from ops.camera import axis_rays, fov_to_focal, intrinsics_from_focal, orbit_label, pack_label, unpack_label

    release, settings = _graf_settings(config)
    G = load_generator(folder / "model_best.pt", release=release, settings=settings)
    r = settings["img_resolution"]
    cases = np.load(folder / "cases.npz")
    count = len({k.split("_", 1)[0] for k in cases.files if k.split("_", 1)[0].isdigit()})
    t = {k: torch.from_numpy(np.asarray(cases[k])) for k in cases.files}
    focal = fov_to_focal(settings["fov_degrees"])
    opengl = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))
    errors: dict[str, float] = {}

    def note(name: str, value: float) -> None:
        errors[name] = max(errors.get(name, 0.0), value)

    def unit_to_signed(x: torch.Tensor) -> torch.Tensor:
        return x * 2 - 1  # the official generator maps rgb, disp and acc alike

    def image(x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 1).reshape(1, -1, r, r)  # [1, M, C] -> [1, C, r, r]

    inverse = [list(GRAF_AXES).index(k) for k in range(3)]  # GRAF's world into ours
    with torch.no_grad():
        for i in range(count):
            u, v, radius = (float(x) for x in t[f"{i}_uvr"])
            # GRAF's sample_pose(u, v, r) as our camera: azimuth 2 pi u is our yaw, v our orbit pitch pi (v - 1/2)
            ours = orbit_label(2 * math.pi * u, math.pi * (v - 0.5), radius, (0.0, 0.0, 0.0), focal)
            cam2world = unpack_label(ours)[0]
            official_pose = _graf_to_official_world(cam2world.transpose(1, 2)).transpose(1, 2) @ opengl
            note("pose", relative_error(official_pose[0, :3], cases[f"{i}_pose"]))
            # the official pose itself (float64 numpy rounded once) renders: its rows into our world, OpenCV axes
            pose = torch.eye(4)[None]
            pose[0, :3] = t[f"{i}_pose"][inverse]
            c = pack_label(pose @ opengl, intrinsics_from_focal(focal))
            origins, directions, _ = G.camera_rays(c, r)
            rays = axis_rays(*unpack_label(c), r, grid=G.config.renderer.pixel_grid)[1]
            scale = rays.norm(dim=-1, keepdim=True)
            note("rays_o", relative_error(_graf_to_official_world(origins[0]), cases[f"{i}_rays_o"]))
            note("rays_d", relative_error(_graf_to_official_world(rays[0]), cases[f"{i}_rays_d"]))
            note("view_dirs", relative_error(directions[0], (rays / scale)[0].numpy()))
            bounds = G.sample_depths(origins, directions, 2)[0, :, :, 0]  # [M, 2] depths along the axis
            note("near_far", relative_error(bounds, t[f"{i}_near_far"][None].expand(bounds.shape[0], 2).numpy()))
            ws = G.mapping(t[f"{i}_z"], c)
            out = G.synthesis(ws, c, neural_rendering_resolution=r)
            note("image", relative_error(out["image"], cases[f"{i}_image"]))
            composite = G.render_composite(G.planes(ws), c, r)
            acc = composite.weights.sum(-2)  # [1, M, 1]
            depth = composite.depth / scale  # the official depth: along the optical axis
            disp = 1 / torch.clamp(depth / (acc + 1e-10), min=1e-10)
            note("image_composite", relative_error(image(composite.features), cases[f"{i}_image"]))
            note("acc", relative_error(unit_to_signed(image(acc)), cases[f"{i}_acc"]))
            note("disp", relative_error(unit_to_signed(image(disp)), cases[f"{i}_disp"]))
            hit = cases[f"{i}_acc"] > -1  # disp where a ray hit something (elsewhere 2e10 - 1 dominates its scale)
            if hit.any():
                note("disp_where_acc", relative_error(unit_to_signed(image(disp))[torch.from_numpy(hit)],
                                                      cases[f"{i}_disp"][hit]))
        points, dirs = t["dec_pts"][:, None, inverse], t["dec_dirs"][:, None, inverse]
        ws = G.mapping(t["dec_z"], torch.zeros(t["dec_z"].shape[0], G.c_dim))
        query = G.sample_mixed(points, dirs, ws)
        note("dec_rgb_logits", relative_error(torch.logit(query["rgb"][:, 0].double()), cases["dec_raw"][:, :3]))
        note("dec_sigma", relative_error(query["sigma"][:, 0, 0], cases["dec_raw"][:, 3]))
    return count, {name: (value, 1e-4) for name, value in errors.items()}


# --- StyleNeRF -------------------------------------------------------------------------------------

def check_stylenerf(folder: Path, config: dict) -> tuple[int, Errors]:
    from models import load_generator
    from models.scene import Scene
    from ops.camera import fov_to_focal
    from ops.stylenerf import from_stylenerf_world, label_from_stylenerf, stylenerf_matrices, stylenerf_rays

    G = load_generator(folder / "network.pkl", release="stylenerf-ffhq256")
    fov = float(config["G_init_kwargs"]["synthesis_kwargs"]["camera_kwargs"]["fov"])
    cases = np.load(folder / "cases.npz")
    count = len({k.split("_", 1)[0] for k in cases.files if k.split("_", 1)[0].isdigit()})
    t = {k: torch.from_numpy(np.asarray(cases[k])) for k in cases.files}
    errors: dict[str, float] = {}
    r = G.neural_rendering_resolution

    def note(name: str, value: float) -> None:
        errors[name] = max(errors.get(name, 0.0), value)

    def image(x: torch.Tensor) -> torch.Tensor:  # [1, r * r, C] -> [1, C, r, r]
        return x.permute(0, 2, 1).reshape(1, -1, r, r)

    with torch.no_grad():
        for i in range(count):
            z, psi, z_bg = t[f"{i}_z"], float(t[f"{i}_psi"]), t[f"{i}_z_bg"]
            c = label_from_stylenerf(t[f"{i}_world_mat"], fov_to_focal(fov))
            world, camera = stylenerf_matrices(c)
            note("world_mat", relative_error(world, cases[f"{i}_world_mat"]))
            note("camera_mat", relative_error(camera, cases[f"{i}_camera_mat"]))
            ws = G.mapping(z, c, truncation_psi=psi)
            note("ws", relative_error(ws, cases[f"{i}_ws"]))
            scene = Scene(ws, z_bg)  # the background code is the scene
            composite = G.render_composite(scene, c, r)
            features = image(composite.features)
            note("image_nerf", relative_error(features[:, :3], cases[f"{i}_image_nerf"]))
            note("feat_nerf", relative_error(features[:, 3:], cases[f"{i}_feat_nerf"]))
            out, _ = G.superresolve(features, ws)
            note("image", relative_error(out, cases[f"{i}_image"]))
            centre, rays = stylenerf_rays(c, r, G.img_resolution, G.embedder.align_corners)
            xyz = centre[:, None] + composite.depth * rays / rays.norm(dim=-1, keepdim=True)
            note("surface_xyz", relative_error(image(xyz), cases[f"{i}_surface_xyz"]))
            points = from_stylenerf_world(t["q_fg_points"])
            fg = G.run_decoder(scene, points, from_stylenerf_world(t["q_dirs"]))
            note("q_fg_sigma_raw", relative_error(fg["sigma"], cases[f"{i}_q_fg_sigma_raw"]))
            note("q_fg_feat", relative_error(fg["rgb"], cases[f"{i}_q_fg_feat"]))
            bg = G.background_decoder(t["q_bg_points"], None, None, codes=z_bg)
            note("q_bg_sigma_raw", relative_error(bg["raw"], cases[f"{i}_q_bg_sigma_raw"]))
            note("q_bg_feat", relative_error(bg["rgb"], cases[f"{i}_q_bg_feat"]))
    return count, {name: (value, 1e-4) for name, value in errors.items()}


def _unpack(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from ops.camera import unpack_label

    return unpack_label(c)


# --- EpiGRAF ---------------------------------------------------------------------------------------

def _epigraf_settings(config: dict) -> dict:
    """config.json's resolution and dataset camera as the settings a user passes to ``load_generator``
    (the fixture renders at its ``test_resolution``; the release's scripts render 256)."""
    camera = config["G_init_kwargs"]["cfg"]["dataset"]["camera"]
    return {"img_resolution": int(config["test_resolution"]), "fov_degrees": float(camera["fov"]),
            "near": float(camera["ray_start"]), "far": float(camera["ray_end"]), "radius": float(camera["radius"])}


def check_epigraf(folder: Path, config: dict) -> tuple[int, Errors]:
    from models import load_generator
    from ops.camera import EPIGRAF_WORLD, epigraf_focal, epigraf_pose, intrinsics_from_focal, pack_label
    from ops.patch_sampling import PatchParams, patch_intrinsics

    settings = _epigraf_settings(config)
    G = load_generator(folder / "network.pkl", settings=settings)
    r = settings["img_resolution"]
    cases = np.load(folder / "cases.npz")
    count = len({k.split("_", 1)[0] for k in cases.files if k.split("_", 1)[0].isdigit()})
    t = {k: torch.from_numpy(np.asarray(cases[k])) for k in cases.files}
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))
    to_official = torch.eye(4)
    to_official[:3, :3] = torch.tensor(EPIGRAF_WORLD)  # our world (front +z) to EpiGRAF's (front +x)
    errors: dict[str, float] = {}

    def note(name: str, value: float) -> None:
        errors[name] = max(errors.get(name, 0.0), value)

    with torch.no_grad():
        for i in range(count):
            z, c_class, psi = t[f"{i}_z"], t[f"{i}_c"], float(t[f"{i}_psi"])
            if c_class.shape[1]:
                G.mapping_network.class_index = int(c_class.argmax(1)[0])
            pose = epigraf_pose(t[f"{i}_camera_angles"], settings["radius"])
            note("cam2world", relative_error(to_official @ pose @ flip, cases[f"{i}_cam2world"]))
            intrinsics = intrinsics_from_focal(epigraf_focal(t[f"{i}_fov"]))[None]
            c = pack_label(pose, intrinsics)
            ws = G.mapping(z, c, truncation_psi=psi)
            note("ws", relative_error(ws, cases[f"{i}_ws"]))
            scene = G.planes(ws)
            note("planes", relative_error(scene.features.flatten(1, 2), cases[f"{i}_planes"]))
            points = t["q_points"] @ to_official[:3, :3]  # official world points in ours
            query = G.sample_mixed(points, torch.zeros_like(points), ws)
            note("q_rgb_sigma_raw", relative_error(torch.cat([query["rgb"], query["sigma"]], -1),
                                                   cases[f"{i}_q_rgb_sigma_raw"]))
            composite = G.render_composite(scene, c, r)
            image = composite.features.permute(0, 2, 1).reshape(1, -1, r, r)
            note("image", relative_error(image, cases[f"{i}_image"]))
            note("depth", relative_error(composite.depth.permute(0, 2, 1).reshape(1, 1, r, r), cases[f"{i}_depth"]))
            if f"{i}_patch_image" in cases.files:
                s, (ox, oy) = float(t[f"{i}_patch_scales"][0, 0]), t[f"{i}_patch_offsets"][0].tolist()
                # official y runs up from the bottom row: our top-left v offset is 1 - s - o_y
                params = PatchParams(torch.tensor([s]), torch.tensor([[ox, 1 - s - oy]]))
                patch = pack_label(pose, patch_intrinsics(intrinsics, params))
                out = G.render_composite(scene, patch, r).features.permute(0, 2, 1).reshape(1, -1, r, r)
                note("patch_image", relative_error(out, cases[f"{i}_patch_image"]))
    return count, {name: (value, 1e-4) for name, value in errors.items()}


def _unpack(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from ops.camera import unpack_label

    return unpack_label(c)


# --- GIRAFFE ----------------------------------------------------------------------------------------

GIRAFFE_TOLERANCES = {"image": 1e-5, "alpha_map": 1e-5, "nr_out": 1e-5}
"""The fixture README: feat_map (and the networks) at 1e-4, alpha_map and image at 1e-5."""


def _giraffe_settings(config: dict) -> dict:
    """config.json's generator and bounding-box arguments as the release settings a user passes."""
    from models.releases import ObjectBoxes

    gen, box = config["generator_kwargs_effective"], config["bounding_box_generator"]
    if gen.get("use_max_composition") or gen.get("sample_object_existance"):
        raise ValueError("max composition and random object existence are not reproducible here")
    if not box.get("fix_scale_ratio", True):
        raise ValueError("only fix_scale_ratio boxes are supported")
    radius = gen["range_radius"]
    if radius[0] != radius[1]:
        raise ValueError("a camera radius range is not supported")
    upper = lambda lo, span: tuple(float(a) + float(b) for a, b in zip(lo, span))  # noqa: E731
    boxes = ObjectBoxes(int(box["n_boxes"]), tuple(box["scale_min"]), upper(box["scale_min"], box["scale_range"]),
                        tuple(box["translation_min"]), upper(box["translation_min"], box["translation_range"]),
                        tuple(box["rotation_range"]), bool(box["object_on_plane"]), float(box["z_level_plane"]),
                        tuple(gen["backround_rotation_range"]))
    return {"fov_degrees": float(gen["fov"]), "near": float(gen["depth_range"][0]),
            "far": float(gen["depth_range"][1]), "num_coarse": int(gen["n_ray_samples"]),
            "radius": float(radius[0]), "neural_rendering_resolution": int(gen["resolution_vol"]), "objects": boxes}


def _decimals(values: np.ndarray) -> Any:
    """float32 case values as the decimals the official script was given (0.15, not 0.15000000596)."""
    out = [float(str(v)) for v in np.asarray(values, dtype=np.float32).reshape(-1)]
    return out[0] if np.ndim(values) == 0 else out


def giraffe_label(world_mat: torch.Tensor, camera_mat: torch.Tensor) -> torch.Tensor:
    """GIRAFFE's camera (OpenGL camera-to-world [N, 4, 4], inverse intrinsics diag(1/f, 1/f, 1, 1) with
    f = 1/tan(fov/2) over [-1, 1]) as our [N, 25] label: OpenCV axes, normalised focal f/2."""
    from ops.camera import pack_label

    cam2world = world_mat.double() @ torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))
    focal = 0.5 / camera_mat[:, 0, 0].double()
    intrinsics = torch.zeros(len(focal), 3, 3, dtype=torch.float64)
    intrinsics[:, 0, 0] = intrinsics[:, 1, 1] = focal
    intrinsics[:, 0, 2] = intrinsics[:, 1, 2] = 0.5
    intrinsics[:, 2, 2] = 1.0
    return pack_label(cam2world.float(), intrinsics.float())


def check_giraffe(folder: Path, config: dict) -> tuple[int, Errors]:
    from models import load_generator
    from models.scene import RenderOptions, SceneControls

    settings = _giraffe_settings(config)
    G = load_generator(folder / "model_best.pt", release="giraffe-compcars64", settings=settings)
    cases = np.load(folder / "cases.npz")
    count = len({k.split("_", 1)[0] for k in cases.files if k.split("_", 1)[0].isdigit()})
    t = {k: torch.from_numpy(np.asarray(cases[k])) for k in cases.files}
    errors: dict[str, float] = {}
    r = settings["neural_rendering_resolution"]

    def note(name: str, value: float) -> None:
        errors[name] = max(errors.get(name, 0.0), value)

    with torch.no_grad():
        for kind, decoder in (("obj", G.decoder), ("bg", G.background_decoder)):
            out = decoder(t[f"dec_{kind}_p"], t[f"dec_{kind}_d"], None, (t[f"dec_{kind}_z_shape"], t[f"dec_{kind}_z_app"]))
            note(f"dec_{kind}_feat", relative_error(out["rgb"], cases[f"dec_{kind}_feat"]))
            note(f"dec_{kind}_sigma", relative_error(out["raw"][..., 0], cases[f"dec_{kind}_sigma"]))
        image, _ = G.superresolve(t["nr_in"], torch.zeros(1, G.num_ws, G.w_dim))
        note("nr_out", relative_error((image + 1) / 2, cases["nr_out"]))
        for i in range(count):
            objects = t[f"{i}_z_shape_obj"].shape[1]
            z = torch.cat([torch.cat([t[f"{i}_z_shape_obj"][:, k], t[f"{i}_z_app_obj"][:, k]], 1) for k in range(objects)]
                          + [t[f"{i}_z_shape_bg"], t[f"{i}_z_app_bg"]], 1)
            c = giraffe_label(t[f"{i}_world_mat"], t[f"{i}_camera_mat"])
            vals = _decimals(cases[f"{i}_vals"])
            poses = tuple(G.embedder.object_pose(_decimals(cases[f"{i}_val_s"][k]), _decimals(cases[f"{i}_val_t"][k]),
                                                 _decimals(cases[f"{i}_val_r"][k])) for k in range(objects))
            options = RenderOptions(scene=SceneControls(poses, G.embedder.background_angle(vals[2])))
            scale, translation, rotation, background = G.embedder.transforms(options.scene, 1, "cpu")
            note("s", relative_error(scale, cases[f"{i}_s"]))
            note("t", relative_error(translation, cases[f"{i}_t"]))
            note("R", relative_error(rotation, cases[f"{i}_R"]))
            note("bg_rotation", relative_error(background, cases[f"{i}_bg_rotation"]))
            ws = G.mapping(z, c)
            scene = G.planes(ws)
            features, _ = G.render_neural(scene, c, r, options)
            note("feat_map", relative_error(features, cases[f"{i}_feat_map"]))
            note("alpha_map", relative_error(G.embedder.alpha_maps(G, scene, c, r, options), cases[f"{i}_alpha_map"]))
            image = G.synthesis(ws, c, options=options)["image"]
            note("image", relative_error((image + 1) / 2, cases[f"{i}_image"]))
    return count, {name: (value, GIRAFFE_TOLERANCES.get(name, 1e-4)) for name, value in errors.items()}


def _unpack(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from ops.camera import unpack_label

    return unpack_label(c)


CHECKERS: dict[str, Callable[[Path, dict], tuple[int, Errors]]] = {
    "pi-GAN": check_pigan, "GRAM": check_gram, "VolumeGAN": check_volumegan, "StyleSDF": check_stylesdf,
    "GRAF": check_graf, "EpiGRAF": check_epigraf, "GIRAFFE": check_giraffe, "StyleNeRF": check_stylenerf}
"""Method name (config.json ``method``) -> checker: (folder, config) -> (cases, errors)."""

_FOLDER_METHODS = {"pigan": "pi-GAN", "gram": "GRAM", "volumegan": "VolumeGAN", "stylesdf": "StyleSDF", "graf": "GRAF",
                   "epigraf": "EpiGRAF", "giraffe": "GIRAFFE", "stylenerf": "StyleNeRF"}
"""Folder-name prefixes (before ``_ref``) of the methods whose config.json does not name them."""


def detect_method(folder: Path, config: dict) -> str:
    method = config.get("method")
    if isinstance(method, str) and method:
        return method
    prefix = folder.name.split("_ref")[0]
    return _FOLDER_METHODS.get(prefix, prefix)


def check_folder(folder: str | Path) -> tuple[bool, str, Errors]:
    """(ok, the report line, per-output errors) for one fixture folder."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as e:
        return False, f"{folder}: unknown FAIL (cannot read config.json: {e})", {}
    method = detect_method(folder, config)
    checker = CHECKERS.get(method)
    if checker is None:
        return False, f"{folder}: {method} UNSUPPORTED (no reference check for this method yet)", {}
    try:
        count, errors = checker(folder, config)
    except Exception as e:  # a crash is a failure of that folder, reported on its line
        return False, f"{folder}: {method} FAIL ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})", {}
    worst = max(errors, key=lambda k: errors[k][0] / max(errors[k][1], 1e-30))
    ok = all(err <= tol for err, tol in errors.values())
    err, tol = errors[worst]
    line = f"{folder}: {method} cases={count} max_rel_err={err:.3g} tol={tol:.3g} {'ok' if ok else 'FAIL'}"
    return ok, line, errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reference_check", description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="fixture folders")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every output's error")
    args = parser.parse_args(argv)
    status = 0
    for folder in args.folders:
        ok, line, errors = check_folder(folder)
        print(line, flush=True)
        if args.verbose:
            for name, (err, tol) in errors.items():
                print(f"    {name}: {err:.3g} (tol {tol:.3g})")
        status |= 0 if ok else 1
    return status


if __name__ == "__main__":
    sys.exit(main())
