"""Official pi-GAN checkpoints: the safe torch-zip reader, the import through ``load_generator``, the
release registry, conversion to our format, and the reference check on ``shared/fixtures/pigan_ref``.

Which fixture folders the reference check runs: only those with a checker (pi-GAN here, GRAM in
tests/test_gram_release.py); the others must be reported as UNSUPPORTED with a failing exit status,
never passed silently (tested below).
"""

from __future__ import annotations

import math
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from models import load_generator
from models.checkpoint import read_ema_shadow_params
from models.errors import CheckpointError, UnsafePickleError
from models.official_formats import module_parameters, read_torch_zip
from models.releases import RELEASES, choose
from tests.conftest import SHARED_DIR, require
from tests.eg3d_pickle_writer import Call, GlobalRef, dump

PIGAN_DIR = SHARED_DIR / "fixtures" / "pigan_ref"
FIXTURE_SETTINGS = dict(fov_degrees=12.0, near=0.88, far=1.12, num_coarse=6, num_fine=6, last_back=True,
                        white_back=False, img_resolution=32)


def _one_line(exc: BaseException, path: Path) -> None:
    message = str(exc)
    assert message.startswith(f"{path}: ") and "\n" not in message


def _pigan_copy(tmp_path: Path, ema: bool = True) -> Path:
    folder = tmp_path / "pigan"
    folder.mkdir()
    shutil.copy(require(PIGAN_DIR / "generator.pth"), folder / "generator.pth")
    if ema:
        shutil.copy(PIGAN_DIR / "ema.pth", folder / "ema.pth")
    return folder / "generator.pth"


def _load_fixture(path: Path | None = None, **kwargs):
    with pytest.warns(UserWarning, match="cannot tell pigan-celeba, pigan-cats apart"):
        return load_generator(path or require(PIGAN_DIR / "generator.pth"), settings=FIXTURE_SETTINGS, **kwargs)


# --- the reader ------------------------------------------------------------------------------------

def test_reads_pigan_generator_as_inert_records() -> None:
    generator = read_torch_zip(require(PIGAN_DIR / "generator.pth"))
    assert generator.qualified_name == "generators.generators.ImplicitGenerator3d"
    params = module_parameters(generator, "g")
    assert len(params) == 30  # README table: generator.parameters() order
    assert params[0][0] == "siren.network.0.layer.weight" and tuple(params[0][1].shape) == (32, 3)
    assert params[16][0] == "siren.final_layer.weight" and params[-1][0] == "siren.mapping_network.network.6.bias"
    assert all(t.device.type == "cpu" for _, t in params)  # storages were tagged cuda:0
    siren = generator.dict_state["_modules"]["siren"]
    assert siren.dict_state["_modules"]["gridwarper"].dict_state["scale_factor"] == pytest.approx(2 / 0.24)
    shadow = read_ema_shadow_params(PIGAN_DIR / "ema.pth")
    assert [tuple(t.shape) for t in shadow] == [tuple(t.shape) for _, t in params]


def test_stock_torch_save_of_modules(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LeakyReLU(0.2), torch.nn.Linear(4, 2))
    torch.save(net, tmp_path / "net.pth")
    record = read_torch_zip(tmp_path / "net.pth")
    params = module_parameters(record, "net")
    assert [n for n, _ in params] == [n for n, _ in net.named_parameters()]
    for (_, ours), theirs in zip(params, net.parameters()):
        assert torch.equal(ours, theirs.detach())


# --- hostile and malformed files --------------------------------------------------------------------

def _hostile_zip(path: Path, payload) -> Path:
    pickled = path.with_suffix(".pkl")
    dump(payload, pickled, protocol=2)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("generator/data.pkl", pickled.read_bytes())
        archive.writestr("generator/version", "3\n")
    pickled.unlink()
    return path


_HOSTILE = {
    "os.system": ("os", "system", lambda m: (f"touch '{m}'",)),
    "builtins.eval": ("builtins", "eval", lambda m: (f"open({str(m)!r}, 'w').close()",)),
    "subprocess.Popen": ("subprocess", "Popen", lambda m: (["touch", str(m)],)),
}


@pytest.mark.parametrize("global_name", sorted(_HOSTILE))
def test_hostile_torch_zip_is_refused(tmp_path: Path, global_name: str) -> None:
    marker = tmp_path / "marker"
    module, name, args = _HOSTILE[global_name]
    path = _hostile_zip(tmp_path / "generator.pth", {"evil": Call(GlobalRef(module, name), args(marker))})
    for reader in (read_torch_zip, load_generator):
        with pytest.raises(UnsafePickleError, match=f"refusing global '{global_name}'") as info:
            reader(path)
        _one_line(info.value, path)
    assert not marker.exists()


def test_hostile_object_saved_by_torch_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch '{marker}'",)

    torch.save({"weights": torch.ones(2), "evil": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(UnsafePickleError, match="'(os|posix).system'") as info:
        read_torch_zip(tmp_path / "evil.pth")
    _one_line(info.value, tmp_path / "evil.pth")
    assert not marker.exists()


def test_hostile_ema_beside_a_real_generator(tmp_path: Path) -> None:
    path = _pigan_copy(tmp_path, ema=False)
    marker = tmp_path / "marker"
    ema = _hostile_zip(path.with_name("ema.pth"), Call(GlobalRef("os", "system"), (f"touch '{marker}'",)))
    with pytest.raises(UnsafePickleError, match="'os.system'") as info:
        _load_fixture(path)
    _one_line(info.value, ema)
    assert not marker.exists()


def test_storage_size_is_checked(tmp_path: Path) -> None:
    torch.save({"w": torch.ones(4)}, tmp_path / "ok.pth")
    with zipfile.ZipFile(tmp_path / "ok.pth") as src, zipfile.ZipFile(tmp_path / "bad.pth", "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info.filename, data[:8] if "/data/" in info.filename else data)
    with pytest.raises(CheckpointError, match="holds 8 bytes, its tensor needs 16") as info:
        read_torch_zip(tmp_path / "bad.pth")
    _one_line(info.value, tmp_path / "bad.pth")


def test_storage_bytes_are_bounded(tmp_path: Path) -> None:
    torch.save({"a": torch.ones(4), "b": torch.ones(4)}, tmp_path / "two.pth")
    assert read_torch_zip(tmp_path / "two.pth", max_bytes=32)["b"].sum() == 4
    with pytest.raises(CheckpointError, match="exceed the 24 byte limit"):
        read_torch_zip(tmp_path / "two.pth", max_bytes=24)


@pytest.mark.parametrize(("content", "what"), [
    (b"\x89PNG\r\n\x1a\n" + bytes(32), "a PNG image"),
    (b"version https://git-lfs.github.com/spec/v1\n", "Git LFS pointer"),
    (b"", "an empty file"),
])
def test_unknown_files_name_what_they_are(tmp_path: Path, content: bytes, what: str) -> None:
    path = tmp_path / "generator.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=what) as info:
        load_generator(path)
    _one_line(info.value, path)


def test_plain_zip_and_ema_file_are_named(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "x.zip", "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError, match="zip archive that is not a torch checkpoint"):
        load_generator(tmp_path / "x.zip")
    with pytest.raises(CheckpointError, match="EMA file: open the generator.pth beside it"):
        load_generator(require(PIGAN_DIR / "ema.pth"))


# --- import, releases, conversion ----------------------------------------------------------------------

def test_import_takes_ema_shadow_params_and_computes_truncation_mean() -> None:
    G = _load_fixture()
    shadow = read_ema_shadow_params(PIGAN_DIR / "ema.pth")
    assert torch.equal(G.decoder.net.layers[0].linear.weight, shadow[0])
    assert torch.equal(G.mapping_network.film.out.bias, shadow[-1])
    raw = module_parameters(read_torch_zip(PIGAN_DIR / "generator.pth"), "g")
    assert not torch.equal(G.decoder.net.layers[0].linear.weight, raw[0][1])
    assert G.config.points.importance == "plain" and G.config.integrator.last_back and G.config.integrator.depth_sum
    assert G.config.decoder.hidden == 32 and G.config.mapping.hidden == 64
    assert G.mapping_network.w_avg.abs().sum() > 0
    again = _load_fixture()
    assert torch.equal(G.mapping_network.w_avg, again.mapping_network.w_avg)  # a fixed draw
    import sys

    assert not [m for m in sys.modules if m.split(".")[0] in ("siren", "generators", "torch_ema")]


def test_timestamped_run_files_find_their_ema(tmp_path: Path) -> None:
    # train.py saves '<DD--HH:MM>--generator.pth' beside '<DD--HH:MM>--ema.pth'
    shutil.copy(require(PIGAN_DIR / "generator.pth"), tmp_path / "06--12:00--generator.pth")
    shutil.copy(PIGAN_DIR / "ema.pth", tmp_path / "06--12:00--ema.pth")
    G = load_generator(tmp_path / "06--12:00--generator.pth", release="pigan-celeba")
    assert torch.equal(G.decoder.net.layers[0].linear.weight, read_ema_shadow_params(PIGAN_DIR / "ema.pth")[0])


def test_release_choice() -> None:
    assert choose("pigan-torch-save", "siren.siren.TALLSIREN").name == "pigan-carla"
    assert choose("pigan-torch-save", "siren.siren.SPATIALSIRENBASELINE", "pigan-cats").near == 0.8
    with pytest.raises(ValueError, match="TALLSIREN"):
        choose("pigan-torch-save", "siren.siren.SPATIALSIRENBASELINE", "pigan-carla")
    G = load_generator(require(PIGAN_DIR / "generator.pth"), release="pigan-cats")
    cats = RELEASES["pigan-cats"]
    assert (G.config.points.near, G.config.points.far, G.config.points.num_coarse) == (cats.near, cats.far, cats.num_coarse)
    with pytest.raises(CheckpointError, match="unknown release"):
        load_generator(PIGAN_DIR / "generator.pth", release="nope")


def test_missing_ema_falls_back_to_raw_weights(tmp_path: Path) -> None:
    path = _pigan_copy(tmp_path, ema=False)
    with pytest.warns(UserWarning, match="no ema.pth beside it"):
        G = load_generator(path, release="pigan-celeba")
    raw = module_parameters(read_torch_zip(path), "g")
    assert torch.equal(G.decoder.net.layers[0].linear.weight, raw[0][1])


def test_convert_round_trip_renders_identically(tmp_path: Path) -> None:
    import visualizer

    out = tmp_path / "pigan.safetensors"
    rc = visualizer.main(["convert", str(require(PIGAN_DIR / "generator.pth")), str(out), "--release", "pigan-celeba"])
    assert rc == 0
    G = load_generator(PIGAN_DIR / "generator.pth", release="pigan-celeba")
    H = load_generator(out)
    assert torch.equal(G.mapping_network.w_avg, H.mapping_network.w_avg)  # the truncation mean is saved
    z = torch.from_numpy(np.random.RandomState(0).randn(1, G.z_dim).astype(np.float32))
    c = G.default_camera(yaw=0.2, pitch=-0.1)
    with torch.no_grad():
        a = G(z, c, truncation_psi=0.7, neural_rendering_resolution=16)
        b = H(z, c, truncation_psi=0.7, neural_rendering_resolution=16)
    for key in ("image", "image_depth"):
        assert torch.equal(a[key], b[key])


# --- the reference check ------------------------------------------------------------------------------

def test_reference_check_pigan(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.reference_check import main

    assert main([str(require(PIGAN_DIR))]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{PIGAN_DIR}: pi-GAN cases=3 max_rel_err=") and line.endswith(" ok"), line


def test_reference_check_reports_unsupported_folders(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.reference_check import main

    others = sorted(p for p in (SHARED_DIR / "fixtures").glob("*_ref*") if p.is_dir() and p.name != "pigan_ref")
    assert others
    assert main([str(p) for p in others]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(others)
    assert all(" UNSUPPORTED " in line or line.endswith(" ok") for line in lines), lines


@pytest.mark.parametrize(("theta", "phi"), [(math.pi / 2, math.pi / 2), (math.pi / 2 + 0.5, math.pi / 2 - 0.2),
                                            (math.pi / 2 - 0.25, math.pi / 2 + 0.4), (0.3, 1.0)])
def test_official_angles_reach_our_orbit_camera(theta: float, phi: float) -> None:
    from ops.camera import fov_to_focal, orbit_label, polar_orbit_label, polar_to_orbit_angles

    yaw, pitch = polar_to_orbit_angles(theta, phi)
    ours = orbit_label(yaw, pitch, 1.0, (0.0, 0.0, 0.0), fov_to_focal(12.0))
    official = polar_orbit_label(theta, phi, 1.0, fov_to_focal(12.0))
    assert torch.allclose(ours, official, atol=2e-6)


def test_imported_model_faces_the_viewer_at_yaw_0() -> None:
    from ops.camera import fov_to_focal, polar_orbit_label

    G = load_generator(require(PIGAN_DIR / "generator.pth"), release="pigan-celeba")
    official = polar_orbit_label(math.pi / 2, math.pi / 2, 1.0, fov_to_focal(RELEASES["pigan-celeba"].fov_degrees))
    assert torch.allclose(G.default_camera(yaw=0.0, pitch=0.0), official, atol=1e-6)
    assert G.config.renderer.pixel_grid == "corners"  # the label's fov spans the outer pixel centres, as pi-GAN's


def test_corner_grid_rays_match_the_official_pixel_grid() -> None:
    """README: pixel (r, c) looks along normalize(-1 + 2c/(R-1), 1 - 2r/(R-1), -1/tan(fov/2)) in
    OpenGL camera axes; cam2world (OpenCV) = official cam2world @ diag(1, -1, -1, 1)."""
    from ops.camera import fov_to_focal, generate_rays, unpack_label

    cases = np.load(require(PIGAN_DIR / "cases.npz"))
    r, fov = 32, 12.0
    x, y = torch.meshgrid(torch.linspace(-1, 1, r), torch.linspace(1, -1, r), indexing="xy")
    cam = torch.stack([x.flatten(), y.flatten(), torch.full((r * r,), -1 / math.tan(math.radians(fov) / 2))], -1)
    cam = cam / cam.norm(dim=-1, keepdim=True)
    for i in range(3):
        official_c2w = torch.from_numpy(cases[f"{i}_cam2world"])
        expected = cam @ official_c2w[0, :3, :3].T
        c2w = official_c2w @ torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))
        label_c2w, intrinsics = unpack_label(torch.cat([c2w.reshape(1, 16), torch.tensor(
            [[fov_to_focal(fov), 0, 0.5, 0, fov_to_focal(fov), 0.5, 0, 0, 1.0]])], 1))
        _, directions = generate_rays(label_c2w, intrinsics, r, grid="corners")
        assert (directions[0] - expected).abs().max() < 5e-7
