"""Fuzz every checkpoint entry point with mutated and hostile files: ``python -m tests.fuzz_loaders [--count N]
[--seed S] [--timeout T]``.

Valid files are made here (no download, no shared fixture): our ``.safetensors`` generators (EG3D-layout
and pipeline configs, from ``tests/fixtures/legacy``), a small EG3D network pickle in the official byte
layout, a ``torch.save`` archive in VolumeGAN's released layout and a training state. Each of ``count``
cases is one mutant or hostile file of a class (:data:`CLASSES`): byte flips, truncations, inserted
bytes, lying safetensors headers, out-of-range configs, hostile pickles (globals that would touch a
canary file, memo and nesting bombs, billion laughs, BUILD), hostile torch archives and special files
(FIFO, folder, device, symlink loop). Each case goes through every entry point (:data:`ENTRY_POINTS`:
``load_generator``, ``load_training_state``, ``visualizer.py preview`` and ``convert``), each call in its
own forked process with its address space capped and a timeout. A call ends in one good outcome,
``loaded`` or ``refused`` (one line naming the file), or one bad one:

- ``code_ran``: the canary file appeared;
- ``hang``: killed at the timeout;
- ``traceback``: an exception other than the one-line error escaped, or a CLI printed a traceback;
- ``multi_line``: the error took more than one line;
- ``over_1gb``: the call grew the process by more than 1 GiB or hit the cap;
- ``crash``: the process died otherwise (a signal, a non-zero exit without a result).

Prints a table of outcomes per class and exits 1 if any bad outcome occurred. ``tests/test_fuzz_loaders.py``
runs 300 cases; the issue's long run is ``--count 2000`` (or 5000).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import random
import resource
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

GOOD = ("loaded", "refused")
BAD = ("code_ran", "hang", "traceback", "multi_line", "over_1gb", "crash")
GIB = 1 << 30
LEGACY = Path(__file__).parent / "fixtures" / "legacy"


# --- valid base files ------------------------------------------------------------------------------

@dataclass
class Bases:
    """The valid files the mutants start from, and the canary hostile payloads would create."""

    canary: Path
    safetensors: list[Path]
    pickle: Path
    torch_zip: Path
    state: Path


def make_bases(folder: Path) -> Bases:
    """Write the valid base files into ``folder``."""
    import torch

    from models.eg3d import EG3DConfig, eg3d_preset
    from models.methods.eg3d import from_eg3d
    from models.pipeline import PipelineGenerator
    from tests.eg3d_pickle_writer import official_layout_copy, write_eg3d_pickle
    from training.loop import STATE_FORMAT, STATE_VERSION

    folder.mkdir(parents=True, exist_ok=True)
    safetensors = []
    for name in ("tiny.safetensors", "volumegan-tiny.safetensors"):
        shutil.copy(LEGACY / name, folder / name)
        safetensors.append(folder / name)

    # A small EG3D generator with the official architecture (256 px tri-plane backbone, hybrid SR).
    kwargs = eg3d_preset("ref128").to_official()
    kwargs.update(z_dim=8, w_dim=8, channel_base=256, channel_max=8, mapping_kwargs={"num_layers": 1})
    kwargs["sr_kwargs"].update(channel_base=256, channel_max=8)
    kwargs["rendering_kwargs"].update(depth_resolution=4, depth_resolution_importance=4)
    torch.manual_seed(0)
    G = PipelineGenerator(from_eg3d(EG3DConfig.from_official(kwargs)))
    tree, persistent, plain = official_layout_copy(G)
    write_eg3d_pickle(folder / "network-snapshot.pkl", tree, kwargs, persistent, plain)

    # VolumeGAN's released layout: {'models': {...: state dict}, 'model_kwargs_init': {...}} (the
    # reader refuses the kwargs of this small dict, which is the point: the archive is what is fuzzed).
    state_dict = {k: v.clone() for k, v in list(G.state_dict().items())[:40]}
    torch.save({"models": {"generator_smooth": state_dict}, "model_kwargs_init": {"generator_smooth":
                {"model_type": "VolumeGANGenerator", "z_dim": 8}}}, folder / "volumegan.pth")
    torch.save({"format": STATE_FORMAT, "version": STATE_VERSION, "step": 3,
                "G": {k: v.clone() for k, v in list(G.state_dict().items())[:20]}, "rng": torch.get_rng_state()},
               folder / "state.pt")
    return Bases(folder / "CANARY", safetensors, folder / "network-snapshot.pkl", folder / "volumegan.pth",
                 folder / "state.pt")


# --- mutants ---------------------------------------------------------------------------------------

def _flip(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice((1, 2, 4, 16))):
        i = rng.randrange(len(out))
        out[i] ^= rng.randrange(1, 256)
    return bytes(out)


def _flip_head(rng: random.Random, data: bytes) -> bytes:
    """Flips in the first 4 kB, where headers, opcodes and zip directories live."""
    out = bytearray(data)
    for _ in range(rng.choice((1, 2, 4))):
        i = rng.randrange(min(len(out), 4096))
        out[i] ^= rng.randrange(1, 256)
    return bytes(out)


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data))]


def _insert(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data))
    return data[:i] + rng.randbytes(rng.choice((1, 7, 64))) + data[i:]


BYTE_MUTATIONS: tuple[Callable[[random.Random, bytes], bytes], ...] = (_flip, _flip_head, _truncate, _insert)

_CONFIG_VALUES = (-1, -64, 0, 3_000_000, 10**9, 10**30, float("nan"), float("inf"), -1e300, "x", None, [1], {},
                  [[[[1]]]], True)


def _safetensors_parts(data: bytes) -> tuple[dict, bytes]:
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _safetensors_join(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def _lying_header(rng: random.Random, data: bytes) -> bytes:
    """A safetensors header that lies about a tensor's shape, dtype or offsets, or its own length."""
    header, body = _safetensors_parts(data)
    name = rng.choice([k for k in header if k != "__metadata__"])
    entry = header[name]
    lie = rng.randrange(6)
    if lie == 0:
        entry["shape"] = [rng.choice((0, 3, 2**31, 2**62)) for _ in entry["shape"]] or [2**40]
    elif lie == 1:
        entry["dtype"] = rng.choice(("F64", "I8", "BOGUS", "F8_E4M3"))
    elif lie == 2:
        entry["data_offsets"] = [rng.choice((0, len(body), 2**60)), rng.choice((0, len(body) + 10, 2**62))]
    elif lie == 3:
        entry["shape"] = [-1, 4]
    elif lie == 4:
        raw = json.dumps(header).encode()
        return struct.pack("<Q", rng.choice((len(raw) + 1000, 2**40, 7))) + raw + body
    else:
        header[name + "_copy"] = dict(entry)
    return _safetensors_join(header, body)


def _paths(value, prefix=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))
    else:
        yield prefix


def _bad_config(rng: random.Random, data: bytes) -> bytes:
    """A safetensors generator whose config has a field set to a huge, negative, non-finite or ill-typed
    value, is nested absurdly deep, or is not JSON."""
    header, body = _safetensors_parts(data)
    meta = header["__metadata__"]
    choice = rng.randrange(10)
    if choice == 0:
        meta["config"] = "[" * 50_000 + "]" * 50_000
    elif choice == 1:
        meta["config"] = meta["config"][: rng.randrange(len(meta["config"]))]
    else:
        config = json.loads(meta["config"])
        for _ in range(rng.choice((1, 1, 2, 3))):
            path = rng.choice(list(_paths(config)))
            target = config
            for key in path[:-1]:
                target = target[key]
            if path:
                target[path[-1]] = rng.choice(_CONFIG_VALUES)
        meta["config"] = json.dumps(config)
    return _safetensors_join(header, body)


def _hostile_pickle(rng: random.Random, canary: Path) -> bytes:
    """A pickle that would run code (touch ``canary``), allocate gigabytes or walk exponentially."""
    import torch

    from tests.eg3d_pickle_writer import Call, GlobalRef, dump

    shell = f"touch '{canary}'"
    payloads = (
        ("os", "system", (shell,)), ("posix", "system", (shell,)), ("subprocess", "call", (["touch", str(canary)],)),
        ("builtins", "eval", (f"open({str(canary)!r}, 'w').close()",)),
        ("builtins", "exec", (f"open({str(canary)!r}, 'w').close()",)),
        ("torch.serialization", "load", (str(canary),)), ("numpy", "load", (str(canary),)),
    )
    kind = rng.randrange(9)
    if kind == 0:
        return b"\x80\x02]r" + rng.choice((b"\xff\xff\xff\x0f", b"\x00\x00\x00\x7f", b"\xff\xff\xff\xff")) + b"."
    if kind == 1:
        return b"\x80\x02" + b"(" * rng.choice((2000, 100_000)) + b"."
    if kind == 2:
        return b"cos\nsystem\n(S'" + shell.encode() + b"'\ntR."
    module, name, args = rng.choice(payloads)
    evil = Call(GlobalRef(module, name), args)
    meta_state: dict = {"training": False, "_parameters": {}, "_buffers": {}, "_modules": {}, "_init_args": (),
                        "_init_kwargs": {"z_dim": 8}}
    if kind == 3:
        meta_state["_init_kwargs"] = {"z_dim": 8, "mapping_kwargs": {"hook": evil}}
    elif kind == 4:
        meta_state["rendering_kwargs"] = {"box_warp": 1, "hook": evil}
    elif kind in (5, 6):
        value: list = [1]
        for _ in range(rng.choice((40, 60))):
            value = [value, value]
        meta_state["_init_kwargs" if kind == 5 else "rendering_kwargs"] = {"deep": value}
    elif kind == 7:
        meta_state["_parameters"] = {"w": torch.zeros(2)}
        meta_state["_modules"] = {"evil": evil}
    src = f"open({str(canary)!r}, 'w').close()\n" if rng.random() < 0.5 else ""
    meta = dict(type="class", version=6, module_src=src, class_name="TriPlaneGenerator", state=meta_state)
    record = Call(GlobalRef("torch_utils.persistence", "_reconstruct_persistent_obj"), (meta,))
    top = {"G_ema": record, "extra": evil} if kind == 8 else {"G_ema": record}
    with tempfile.TemporaryDirectory() as folder:  # the writer pickles to a file
        path = Path(folder) / "hostile.pkl"
        dump(top, path, protocol=rng.choice((2, 4)))
        return path.read_bytes()


def _hostile_zip(rng: random.Random, data: bytes, canary: Path) -> bytes:
    """A torch archive whose data.pkl is hostile, or whose storages are missing or mis-sized."""
    source = zipfile.ZipFile(io.BytesIO(data))
    names = source.namelist()
    pickle_name = next(n for n in names if n.endswith("data.pkl"))
    out = io.BytesIO()
    kind = rng.randrange(3)
    with zipfile.ZipFile(out, "w") as archive:
        for n in names:
            payload = source.read(n)
            if n == pickle_name and kind == 0:
                payload = _hostile_pickle(rng, canary)
            elif "/data/" in n and kind == 1 and rng.random() < 0.5:
                continue  # a storage the pickle names is missing
            elif "/data/" in n and kind == 2:
                payload = payload[: len(payload) // 2]
            archive.writestr(n, payload)
    return out.getvalue()


def make_case(rng: random.Random, bases: Bases, index: int, folder: Path) -> tuple[str, Path]:
    """Write case ``index`` (classes taken in turn, the mutation drawn from ``rng``) into ``folder``;
    returns (class, path)."""
    cls = CLASSES[index % len(CLASSES)]
    path = folder / f"case{index:05d}"
    if cls == "special":
        kind = rng.randrange(5)
        if kind == 0:
            os.mkfifo(path)
        elif kind == 1:
            path.mkdir()
        elif kind == 2:
            path.symlink_to("/dev/zero")
        elif kind == 3:
            path.symlink_to(path.name)  # a symlink loop
        else:
            path.write_bytes(b"")
        return cls, path
    if cls == "hostile_pickle":
        data = _hostile_pickle(rng, bases.canary)
    elif cls == "hostile_torch_zip":
        data = _hostile_zip(rng, bases.torch_zip.read_bytes(), bases.canary)
    else:
        family, _, mutation = cls.partition(":")
        source = {"safetensors": rng.choice(bases.safetensors), "pickle": bases.pickle, "torch_zip": bases.torch_zip,
                  "state": bases.state}[family]
        data = source.read_bytes()
        if mutation == "lying_header":
            data = _lying_header(rng, data)
        elif mutation == "bad_config":
            data = _bad_config(rng, data)
        else:
            data = rng.choice(BYTE_MUTATIONS)(rng, data)
    path.write_bytes(data)
    return cls, path


CLASSES = ("safetensors:bytes", "safetensors:lying_header", "safetensors:bad_config", "pickle:bytes",
           "hostile_pickle", "torch_zip:bytes", "hostile_torch_zip", "state:bytes", "special")
"""Kinds of case, taken in turn."""


# --- entry points, each run in a forked child --------------------------------------------------------

def _api(call: Callable[[Path], object]) -> Callable[[Path, Path], tuple[str, str]]:
    def run(path: Path, work: Path) -> tuple[str, str]:
        from models.errors import CheckpointError

        try:
            call(path)
        except CheckpointError as e:
            return "refused", str(e)
        return "loaded", ""
    return run


def _cli(*args: str) -> Callable[[Path, Path], tuple[str, str]]:
    def run(path: Path, work: Path) -> tuple[str, str]:
        import visualizer

        argv = [a.format(path=path, work=work) for a in args]
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                status = visualizer.main(argv)
            except SystemExit as e:
                status = e.code if isinstance(e.code, int) else 2
                if not isinstance(e.code, int) and e.code is not None:
                    print(e.code, file=sys.stderr)
        text = err.getvalue().strip()
        if status == 0:
            return "loaded", text
        return "refused", text
    return run


def _load_generator(path: Path) -> object:
    from models import load_generator

    return load_generator(path)


def _load_state(path: Path) -> object:
    from training.loop import load_training_state

    return load_training_state(path)


ENTRY_POINTS: dict[str, Callable[[Path, Path], tuple[str, str]]] = {
    "load_generator": _api(_load_generator),
    "load_training_state": _api(_load_state),
    "preview": _cli("preview", "{path}", "--out", "{work}/preview.png", "--force"),
    "convert": _cli("convert", "{path}", "{work}/converted.safetensors", "--force"),
}


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass
class Call:
    """One entry point running on one case in a forked child."""

    case: int
    cls: str
    entry: str
    path: Path
    work: Path
    pid: int = 0
    deadline: float = 0.0
    base_rss: int = 0


def start_call(call: Call, timeout: float) -> None:
    """Fork a child that runs ``call`` with its address space capped and writes work/result.json."""
    call.work.mkdir(parents=True, exist_ok=True)
    call.base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    cap = _vm_size() + GIB + GIB // 2
    call.deadline = time.monotonic() + timeout
    pid = os.fork()
    if pid:
        call.pid = pid
        return
    code = 0  # child: never returns
    try:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        warnings.simplefilter("ignore")
        try:
            outcome, detail = ENTRY_POINTS[call.entry](call.path, call.work)
            if outcome == "refused" and "\n" in detail.strip():
                outcome = "multi_line"
            if "Traceback (most recent call last)" in detail:
                outcome = "traceback"
        except MemoryError:
            outcome, detail = "over_1gb", "MemoryError"
        except BaseException as e:  # noqa: BLE001 - anything else escaping is what the fuzzer looks for
            message = str(e)
            over = "can't allocate memory" in message or "not enough memory" in message
            outcome = "over_1gb" if over else "traceback"
            detail = f"{type(e).__name__}: {message[:300]}\n{traceback.format_exc()[-1500:]}"
        (call.work / "result.json").write_text(json.dumps({"outcome": outcome, "detail": detail[:2000]}))
    except BaseException:  # noqa: BLE001
        code = 3
    finally:
        os._exit(code)


def poll_call(call: Call) -> tuple[str, str] | None:
    """(outcome, detail) once the child has ended (killed at its deadline), else None."""
    done, status, usage = os.wait4(call.pid, os.WNOHANG)
    if not done:
        if time.monotonic() <= call.deadline:
            return None
        os.kill(call.pid, signal.SIGKILL)
        os.wait4(call.pid, 0)
        return "hang", "killed at the timeout"
    grown = usage.ru_maxrss * 1024 - call.base_rss
    result = call.work / "result.json"
    if os.WIFSIGNALED(status):
        return "crash", f"signal {os.WTERMSIG(status)}"
    if not result.exists():
        return "crash", f"exit status {os.WEXITSTATUS(status)} without a result"
    data = json.loads(result.read_text())
    if grown > GIB and data["outcome"] in GOOD:
        return "over_1gb", f"grew by {grown / GIB:.2f} GiB"
    return data["outcome"], data["detail"]


def _warm_up(bases: Bases, work: Path) -> None:
    """Run every entry point once on a valid file in this process, so that each forked child starts with
    everything imported (and the same code, even if the files change during a long run)."""
    work.mkdir(parents=True, exist_ok=True)
    for entry, run in ENTRY_POINTS.items():
        path = bases.state if entry == "load_training_state" else bases.safetensors[1]
        outcome, detail = run(path, work)
        if outcome != "loaded":
            raise RuntimeError(f"{entry} does not load the valid base file {path}: {detail}")


def fuzz(count: int, seed: int, timeout: float, folder: Path, jobs: int = 2, log: Callable[[str], None] = print
         ) -> dict[str, collections.Counter]:
    """Run ``count`` cases through every entry point, ``jobs`` calls at a time; returns outcome counts per
    class (and 'all'). Each case has its own canary file, so concurrent calls cannot mask one another."""
    import torch

    torch.set_num_threads(1)  # forked children then start no thread pools of their own
    bases = make_bases(folder / "bases")
    _warm_up(bases, folder / "warm-up")
    rng = random.Random(seed)
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    remaining: dict[int, list[tuple[str, str]]] = {}
    cases: dict[int, tuple[str, Path, Path]] = {}
    queue: collections.deque[Call] = collections.deque()
    running: list[Call] = []
    next_case = 0

    def finish_case(i: int) -> None:
        cls, path, canary = cases.pop(i)
        outcomes = remaining.pop(i)
        ran = canary.exists()
        for entry, (outcome, detail) in outcomes:
            if ran:
                outcome, detail = "code_ran", "the canary file appeared"
            counts[cls][outcome] += 1
            counts["all"][outcome] += 1
            if outcome in BAD:
                log(f"BAD {outcome}: case {i} ({cls}) via {entry}: {detail.splitlines()[0] if detail else ''}")
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink(missing_ok=True)
        shutil.rmtree(folder / f"work{i:05d}", ignore_errors=True)

    while next_case < count or queue or running:
        while len(queue) < jobs and next_case < count:
            canary = folder / f"CANARY{next_case:05d}"
            bases.canary = canary
            cls, path = make_case(rng, bases, next_case, folder)
            cases[next_case], remaining[next_case] = (cls, path, canary), []
            queue.extend(Call(next_case, cls, entry, path, folder / f"work{next_case:05d}" / entry)
                         for entry in ENTRY_POINTS)
            next_case += 1
        while queue and len(running) < jobs:
            call = queue.popleft()
            start_call(call, timeout)
            running.append(call)
        time.sleep(0.002)
        for call in list(running):
            ended = poll_call(call)
            if ended is None:
                continue
            running.remove(call)
            remaining[call.case].append((call.entry, ended))
            if len(remaining[call.case]) == len(ENTRY_POINTS):
                finish_case(call.case)
    return counts


def table(counts: dict[str, collections.Counter]) -> str:
    outcomes = (*GOOD, *BAD)
    rows = [f"{'class':26s} " + " ".join(f"{o:>10s}" for o in outcomes)]
    for cls in (*CLASSES, "all"):
        if cls in counts:
            rows.append(f"{cls:26s} " + " ".join(f"{counts[cls][o]:10d}" for o in outcomes))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="cases (each through every entry point)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per call before it counts as a hang")
    parser.add_argument("--jobs", type=int, default=2, help="calls run at once")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fuzz-") as folder:
        counts = fuzz(args.count, args.seed, args.timeout, Path(folder), jobs=args.jobs)
    calls = sum(counts["all"].values())
    print(table(counts))
    bad = sum(counts["all"][o] for o in BAD)
    print(f"{args.count} cases, {calls} calls in {time.perf_counter() - start:.0f} s (seed {args.seed}): "
          f"{bad} bad outcomes")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
