"""The GPU acceptance run: ``make gpu-check`` (``python -m tests.gpu_check [--quick] [--device cuda] [--out
gpu-check.json]``).

Everything a GPU must prove, in one command of a few minutes on one H100 / H200, with a JSON report and a
printed table:

1. **fixtures**: every checkpoint in ``../shared/fixtures`` rendered on the device against its CPU render
   (exact: max relative error <= 1e-3; fast precision: its error stated);
2. **presets**: every preset renders one frame and trains two steps (``train.py bench --steps 2``);
3. **viewer**: frame times of the FFHQ-512 layout at neural resolution 64 and 128, camera-only and a new
   latent every frame, in both precisions (``renderers.bench``);
4. **app**: the real window's pipeline (``app.bench``: render, upload through the interop path, draw),
   and the render worker's frame handoff: displayed frames per second with each CUDA frame handed to the
   uploader with its event against a CPU wait per frame (``benchmark_worker_handoff``);
5. **training**: ``train.py bench --cfg ffhq512 --batch 32 --amp bf16`` and one pipeline preset.

``--quick`` runs the same sections small enough for the CPU (tiny presets, few frames, batch 4): the
suite runs it (``tests/test_gpu_check.py``) so that the command never rots. A section that cannot run
(no display for the app, no fixtures) is reported as skipped with the reason, never as passed.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"
EXACT_TOLERANCE = 1e-3


def _frame(G, precision: str):
    """The default view of seed 0 at ``precision`` through the app's renderer: (image, depth) on the CPU."""
    from renderers.render_args import QualityArgs, RenderArgs
    from renderers.renderer import GeneratorRenderer

    out = GeneratorRenderer(G).render(RenderArgs(quality=QualityArgs(precision=precision)))
    return out.image.float().cpu(), out.depth.float().cpu()


def _relative(a, b) -> float:
    return float((a - b).abs().max() / max(1.0, float(b.abs().max())))


def check_fixtures(device: str, quick: bool) -> list[dict]:
    from models import load_generator
    from tests.test_release_everywhere import RELEASES  # each fixture's checkpoint, and its release where needed

    rows = []
    if not FIXTURES.is_dir():
        return [{"name": "fixtures", "status": "skipped", "reason": f"no fixtures under {FIXTURES}"}]
    for name, release in RELEASES:
        path = FIXTURES / name
        row = {"name": path.parent.name, "file": path.name}
        try:
            reference = _frame(load_generator(path, release=release), "exact")
            G = load_generator(path, device=device, release=release)
            exact, fast = _frame(G, "exact"), _frame(G, "fast")
            row.update(exact_image=_relative(exact[0], reference[0]), exact_depth=_relative(exact[1], reference[1]),
                       fast_image=_relative(fast[0], reference[0]), fast_depth=_relative(fast[1], reference[1]))
            row["status"] = "ok" if max(row["exact_image"], row["exact_depth"]) <= EXACT_TOLERANCE else "FAIL"
        except Exception as e:  # noqa: BLE001 - a report row, not a crash
            row.update(status="FAIL", error=f"{type(e).__name__}: {e}".splitlines()[0][:300])
        rows.append(row)
    return rows


def _train_bench(cfg: str, device: str, batch: int, amp: str, steps: int = 2) -> dict:
    run = subprocess.run([sys.executable, str(ROOT / "train.py"), "bench", "--cfg", cfg, "--device", device,
                          "--batch", str(batch), "--amp", amp, "--steps", str(steps), "--warmup", "0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=1200)
    row: dict = {"name": f"train {cfg} batch {batch} amp {amp}", "status": "ok" if run.returncode == 0 else "FAIL"}
    speed = re.search(r"([\d.]+) img/s,", run.stdout)
    memory = re.search(r"peak GPU memory ([^,]+), peak RSS ([\d.]+) GiB", run.stdout)
    if speed:
        row["img_per_s"] = float(speed.group(1))
    if memory:
        row["peak_gpu_memory"], row["peak_rss_gib"] = memory.group(1), float(memory.group(2))
    if run.returncode != 0:
        row["error"] = (run.stderr.strip().splitlines() or ["?"])[-1][:300]
    return row


def check_presets(device: str, quick: bool) -> list[dict]:
    from models.checkpoint import open_generator
    from models.methods import PIPELINE_PRESET_NAMES

    names = ["tiny", *(n for n in PIPELINE_PRESET_NAMES if n.endswith("-tiny"))] if quick else \
        ["ffhq512", *(n for n in PIPELINE_PRESET_NAMES if not n.endswith("-tiny"))]
    rows = []
    for name in names:
        row: dict = {"name": name}
        try:
            image, depth = _frame(open_generator(name, device=device), "exact")
            row["renders"] = bool(image.isfinite().all() and depth.isfinite().all())
        except Exception as e:  # noqa: BLE001
            row.update(renders=False, error=f"{type(e).__name__}: {e}".splitlines()[0][:300])
        if not quick or name in ("tiny", "volumegan-tiny"):  # quick: two trainings keep the CPU run short
            trained = _train_bench(name, device, batch=4, amp="off")
            row["trains"] = trained["status"] == "ok"
            row.update({k: v for k, v in trained.items() if k in ("img_per_s", "error")})
        row["status"] = "ok" if row["renders"] and row.get("trains", True) else "FAIL"
        rows.append(row)
    return rows


def check_viewer(device: str, quick: bool) -> list[dict]:
    from models.checkpoint import open_generator
    from renderers.bench import benchmark_generator

    name, resolutions, frames = ("tiny", (16, 32), 2) if quick else ("ffhq512", (64, 128), 10)
    G = open_generator(name, device=device)
    rows = []
    for r in resolutions:
        for precision in ("exact", "fast"):
            result = benchmark_generator(G, neural_resolution=r, frames=frames, warmup=1, precision=precision)
            m = result.medians()
            rows.append({"name": f"{name} r{r} {precision}", "status": "ok", "full_ms": m["full"],
                         "camera_only_ms": m["camera_only"], "full_fps": 1000 / m["full"],
                         "camera_only_fps": 1000 / m["camera_only"], "peak_memory_mb": result.peak_memory_mb})
    return rows


def check_app(device: str, quick: bool) -> list[dict]:
    from app.bench import benchmark_app, benchmark_worker_handoff
    from app.interop import InteropError
    from app.window import WindowError
    from models.checkpoint import open_generator

    G = open_generator("tiny" if quick else "ffhq512", device=device)
    rows = []
    for interop in ("auto", "host"):
        try:
            result = benchmark_app(G, frames=2 if quick else 20, warmup=1, interop=interop, size=256 if quick else 1024)
        except (WindowError, InteropError) as e:
            rows.append({"name": f"app {interop}", "status": "skipped", "reason": str(e).splitlines()[0][:300]})
            continue
        rows.append({"name": f"app {interop}", "status": "ok", "uploader": result.uploader, "gl": result.gl_renderer,
                     "report": result.report()})
    try:  # the render worker's frame handoff: CUDA event to the uploader against a CPU wait per frame
        handoff = benchmark_worker_handoff(G, frames=3 if quick else 30, warmup=1, size=256 if quick else 1024)
    except (WindowError, InteropError) as e:
        rows.append({"name": "worker handoff", "status": "skipped", "reason": str(e).splitlines()[0][:300]})
    else:
        rows.append({"name": "worker handoff", "status": "ok", **handoff})
    return rows


def check_training(device: str, quick: bool) -> list[dict]:
    if quick:
        return [_train_bench("tiny", device, batch=4, amp="off")]
    return [_train_bench("ffhq512", device, batch=32, amp="bf16"), _train_bench("volumegan", device, batch=32, amp="bf16")]


SECTIONS = {"fixtures": check_fixtures, "presets": check_presets, "viewer": check_viewer, "app": check_app,
            "training": check_training}


def run(device: str, quick: bool, sections: list[str] | None = None, log=print) -> dict:
    import torch

    report: dict = {"device": device, "quick": quick, "torch": torch.__version__,
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "sections": {}}
    for name in sections or list(SECTIONS):
        start = time.perf_counter()
        try:
            rows = SECTIONS[name](device, quick)
        except Exception as e:  # noqa: BLE001 - one broken section must not hide the others
            rows = [{"name": name, "status": "FAIL", "error": f"{type(e).__name__}: {e}".splitlines()[0][:300],
                     "traceback": traceback.format_exc()[-2000:]}]
        report["sections"][name] = {"seconds": time.perf_counter() - start, "rows": rows}
        for row in rows:
            figures = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()
                                if k not in ("name", "status", "report", "traceback"))
            log(f"{name:9s} {row['status']:8s} {row['name']:40s} {figures}")
    report["ok"] = all(row["status"] != "FAIL" for s in report["sections"].values() for row in s["rows"])
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, choices=["cuda", "cpu"], help="default: cuda when available")
    parser.add_argument("--quick", action="store_true", help="small sizes for the CPU (what the suite runs)")
    parser.add_argument("--out", default="gpu-check.json", help="the JSON report")
    parser.add_argument("--sections", default=None, help=f"comma-separated subset of {', '.join(SECTIONS)}")
    args = parser.parse_args(argv)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda requested but no CUDA device is available", file=sys.stderr)
        return 2
    sections = args.sections.split(",") if args.sections else None
    unknown = set(sections or ()) - set(SECTIONS)
    if unknown:
        print(f"error: unknown sections {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    report = run(device, args.quick, sections)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"{'ok' if report['ok'] else 'FAIL'}: report in {args.out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
