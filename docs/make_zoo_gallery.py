"""Regenerate the README's model-zoo gallery and table: ``python docs/make_zoo_gallery.py``.

For each bundled model (``assets/zoo``, ``renderers.model_source.bundled_models``) the ``images``
command renders seed 0 from five yaws with depth and normal rows, exactly as a user would run it;
the strips are stacked, one row group per method, into ``docs/zoo_gallery.png``. The table (printed,
for the README) comes from each file's metadata, which ``training.zoo`` wrote when it trained it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TILE = 64
"""Each view is shown at this size (nearest-neighbour magnification of the 32 px models)."""
LABEL_WIDTH = 84


def strip(model: Path, out: Path) -> np.ndarray:
    """``images MODEL --seeds 0 --views 5 --depth --normals``: RGB, depth and normal rows."""
    command = [sys.executable, str(REPO / "visualizer.py"), "images", str(model), "--seeds", "0", "--views", "5",
               "--depth", "--normals", "--device", "cpu", "--out", str(out)]
    print("$ visualizer.py " + " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True)
    return np.asarray(Image.open(out / "seed0000.png").convert("RGB"))


def table(models) -> str:
    """The README table: one row per model from its metadata."""
    from training.zoo import ZOO

    rows = ["| Method | px | Training time | kimg | SWD init -> end (ratio) | reprojection (valid) | "
            "geometry within 10° | file |",
            "|---|---|---|---|---|---|---|---|"]
    for m in models:
        meta = m.metadata
        figures = json.loads(meta.get("eval", "{}"))
        minutes = float(meta.get("train_seconds", 0)) / 60
        pixels = ZOO[m.method].resolution if m.method in ZOO else "?"
        rows.append(
            f"| {m.method} | {pixels} | {minutes:.0f} min | {float(meta.get('kimg', 0)):g} | {meta.get('swd_init')} -> "
            f"{meta.get('swd')} ({meta.get('swd_ratio')}) | {figures.get('reprojection', float('nan')):.2f} "
            f"({figures.get('reprojection/valid', float('nan')):.0%}) | "
            f"{figures.get('geometry/within10', float('nan')):.1%} | {m.path.stat().st_size / 1e6:.2f} MB |")
    return "\n".join(rows)


def main() -> int:
    from renderers.model_source import bundled_models

    models = bundled_models()
    if not models:
        print("error: no bundled models under assets/zoo (python -m training.zoo build METHOD)", file=sys.stderr)
        return 2
    groups = []
    with tempfile.TemporaryDirectory() as tmp:
        for m in models:
            pixels = strip(m.path, Path(tmp) / m.method)
            scale = max(1, TILE // (pixels.shape[0] // 3))  # three rows: RGB, depth, normals
            pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
            label = Image.new("RGB", (LABEL_WIDTH, pixels.shape[0]), (255, 255, 255))
            ImageDraw.Draw(label).text((4, pixels.shape[0] // 2 - 6), m.method, fill=(0, 0, 0))
            groups.append(np.concatenate([np.asarray(label), pixels], axis=1))
    width = max(g.shape[1] for g in groups)
    rows = [np.pad(g, ((0, 4), (0, width - g.shape[1]), (0, 0)), constant_values=255) for g in groups]
    Image.fromarray(np.concatenate(rows, axis=0)).save(DOCS / "zoo_gallery.png")
    print(f"wrote {DOCS / 'zoo_gallery.png'}")
    print(table(models))
    return 0


if __name__ == "__main__":
    sys.exit(main())
