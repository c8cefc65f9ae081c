"""Regenerate the README's app screenshots: ``python docs/make_app_figures.py`` (needs a display;
``xvfb-run -a`` works).

Plays a session script through the real app on the bundled model, then puts an image screenshot of each
render mode side by side in ``docs/app_modes.png``. ``docs/app_window.png`` is the whole window.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
MODES = ("rgb", "raw", "depth", "normals", "mesh", "side")
WINDOW = (1280, 800)
TILE = 256
"""Height of each mode's tile (image screenshots drawn at this size by the viewport's shaders)."""


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        shots = Path(tmp)
        actions: list[dict] = [
            {"set": {"seed": 1, "yaw": 0.35, "pitch": -0.1, "mesh_resolution": 128}},
            {"panels": {"Quality": True, "Performance": True}},
            {"wait": True},
            {"frames": 30},
            {"screenshot": str(DOCS / "app_window.png"), "what": "window"},
        ]
        for mode in MODES:
            actions += [{"set": {"mode": mode}}, {"screenshot": str(shots / f"{mode}.png"), "height": TILE}]
        script = shots / "figures.json"
        script.write_text(json.dumps(actions))
        subprocess.run([sys.executable, str(REPO / "visualizer.py"), "--script", str(script), "--exit",
                        "--device", "cpu", "--size", f"{WINDOW[0]}x{WINDOW[1]}", "--settings", "none"],
                       check=True)
        tiles = [(mode, Image.open(shots / f"{mode}.png").convert("RGB")) for mode in MODES]
    width = sum(t.width for _, t in tiles) + 8 * (len(tiles) + 1)
    sheet = Image.new("RGB", (width, TILE + 34), (28, 28, 33))
    draw = ImageDraw.Draw(sheet)
    x = 8
    for mode, tile in tiles:
        sheet.paste(tile, (x, 8))
        draw.text((x + 4, TILE + 14), mode, fill=(230, 230, 230))
        x += tile.width + 8
    sheet.save(DOCS / "app_modes.png", optimize=True)
    print(f"wrote {DOCS / 'app_window.png'} and {DOCS / 'app_modes.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
