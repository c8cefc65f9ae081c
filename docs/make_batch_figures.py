"""Regenerate the README's batch-tool figures: ``python docs/make_batch_figures.py`` (the mesh picture
needs a display; ``xvfb-run -a`` works).

Each figure comes from the command line exactly as a user would run it, on the bundled model:

* ``docs/batch_images.png``: ``images --grid`` (contact sheet, RGB / depth / normals rows);
* ``docs/batch_video.png``: every 10th frame of a 2x2 ``video`` (orbit, latent loop over 8 seeds),
  decoded back from the mp4;
* ``docs/batch_mesh.png``: the exported ``mesh`` PLY, read back with trimesh and drawn by the app's
  mesh shader from three yaws;
* ``docs/batch_metrics.jsonl``: ``metrics`` against a small synthetic heads set.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def cli(*args: str) -> None:
    print("$ visualizer.py " + " ".join(args), flush=True)
    subprocess.run([sys.executable, str(REPO / "visualizer.py"), *args], check=True)


def video_strip(path: Path, every: int = 10) -> Image.Image:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    width, height = next(reader)["size"]
    frames = [np.frombuffer(f, np.uint8).reshape(height, width, 3) for i, f in enumerate(reader) if i % every == 0]
    return Image.fromarray(np.concatenate(frames[:8], axis=1))


def mesh_views(path: Path, size: int = 256) -> Image.Image:
    """The PLY drawn by the app's viewport (hidden window) from yaw -0.6, 0 and 0.6."""
    import trimesh

    from app.interop import HostUploader
    from app.viewport import Viewport
    from app.window import AppWindow
    from ops.camera import fov_to_focal, orbit_label
    from renderers.display_frame import DisplayFrame
    from renderers.mesh import Mesh
    from renderers.render_args import CameraPose, DisplayArgs

    loaded = trimesh.load(path, force="mesh")
    mesh = Mesh(loaded.vertices, loaded.faces)
    window = AppWindow("figures", 64, 64, visible=False)
    viewport = Viewport(HostUploader())
    try:
        pictures = []
        for yaw in (-0.6, 0.0, 0.6):
            label = orbit_label(yaw, 0.0, 2.7, [0.0, 0.0, 0.2], fov_to_focal(CameraPose().fov_degrees))[0]
            viewport.set_frame(DisplayFrame(mode="mesh", mesh=mesh, camera=label, image_resolution=size))
            pictures.append(viewport.render_image(DisplayArgs(), label, size=(size, size)))
        return Image.fromarray(np.concatenate(pictures, axis=1))
    finally:
        viewport.delete()
        window.destroy()


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        cli("images", "--seeds", "0-3", "--views", "5", "--depth", "--normals", "--grid", "--out", str(out / "images"))
        shutil.copy(out / "images" / "grid.png", DOCS / "batch_images.png")

        cli("video", "--seeds", "0-7", "--grid", "2x2", "--trajectory", "orbit", "--frames", "80",
            "--out", str(out / "orbit.mp4"))
        video_strip(out / "orbit.mp4").save(DOCS / "batch_video.png", optimize=True)

        cli("mesh", "--seeds", "1", "--res", "256", "--out", str(out / "meshes"))
        mesh_views(out / "meshes" / "seed0001.ply").save(DOCS / "batch_mesh.png", optimize=True)

        subprocess.run([sys.executable, str(REPO / "train.py"), "dataset", "synthetic", "--kind", "heads",
                        "--out", str(out / "heads64.zip"), "--count", "256", "--res", "64", "--seed", "1"], check=True)
        results = DOCS / "batch_metrics.jsonl"
        results.unlink(missing_ok=True)
        cli("metrics", "--data", str(out / "heads64.zip"), "--num", "256",
            "--metrics", "swd,swd-depth,swd-normals,reprojection,geometry", "--out", str(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
