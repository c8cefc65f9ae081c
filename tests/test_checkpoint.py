"""Our safetensors checkpoints: round trip, atomic writes, and one-line errors on bad input."""

from __future__ import annotations

import json
import os
import struct

import pytest
import torch

from models import CheckpointError, load_generator, save_generator
from models.build import build_eg3d
from models.checkpoint import atomic_write_bytes, open_generator


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(1)
    return build_eg3d("tiny").eval()


def render(G, seed: int = 3):
    z = torch.randn([1, G.z_dim], generator=torch.Generator().manual_seed(seed))
    c = G.default_camera(yaw=0.3)
    with torch.no_grad():
        return G.synthesis(G.mapping(z, c, truncation_psi=0.8), c)


def one_line(err: Exception) -> str:
    text = str(err)
    assert "\n" not in text
    return text


def test_round_trip_is_exact(tiny, tmp_path):
    path = tmp_path / "g.safetensors"
    save_generator(tiny, path, metadata={"kimg": 12})
    G = load_generator(path)
    assert not G.training and not any(p.requires_grad for p in G.parameters())
    assert G.config == tiny.config
    for a, b in zip(tiny.state_dict().items(), G.state_dict().items()):
        assert a[0] == b[0] and torch.equal(a[1], b[1])
    before, after = render(tiny), render(G)
    for key in before:
        assert torch.equal(before[key], after[key])


def test_config_travels_in_metadata(tiny, tmp_path):
    from safetensors import safe_open

    path = tmp_path / "g.safetensors"
    tiny.rendering_kwargs["depth_resolution"] = 20  # live edits are saved too
    try:
        save_generator(tiny, path)
    finally:
        tiny.rendering_kwargs["depth_resolution"] = 12
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == "3dgan-studio/generator" and meta["method"] == "pipeline"  # EG3D is a pipeline preset
    assert json.loads(meta["config"])["points"]["num_coarse"] == 20
    assert load_generator(path).rendering_kwargs["depth_resolution"] == 20


def test_atomic_write_keeps_old_file_on_failure(tiny, tmp_path, monkeypatch):
    path = tmp_path / "g.safetensors"
    save_generator(tiny, path)
    original = path.read_bytes()

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(CheckpointError, match="No space left"):
        save_generator(tiny, path)
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.safetensors"]  # no temp file left behind


def test_unwritable_path_names_the_file(tiny, tmp_path):
    target = tmp_path / "missing-folder" / "g.safetensors"
    with pytest.raises(CheckpointError) as e:
        save_generator(tiny, target)
    assert str(target) in one_line(e.value) and "cannot write" in str(e.value)


def test_truncated_file(tiny, tmp_path):
    path = tmp_path / "g.safetensors"
    save_generator(tiny, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as e:
        load_generator(path)
    assert str(path) in one_line(e.value) and "truncated or corrupt" in str(e.value)


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "unrecognised file type"),
        (b"hello, this is text\n", "unrecognised file type"),
        (b'{"labels": []}', "unrecognised file type"),
        (b"PK\x03\x04" + b"\0" * 40, "unrecognised file type"),
    ],
)
def test_wrong_file_type(tmp_path, content, problem):
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as e:
        load_generator(path)
    assert str(path) in one_line(e.value) and problem in str(e.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_generator(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="is a folder"):
        load_generator(tmp_path)


def rewrite_metadata(path, edit) -> None:
    """Rewrite a safetensors header in place with ``edit(meta)`` applied."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    edit(header["__metadata__"])
    new = json.dumps(header).encode()
    new += b" " * ((8 - len(new) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(new)) + new + data[8 + n :])


def test_shapes_that_do_not_match_config(tiny, tmp_path):
    path = tmp_path / "g.safetensors"
    save_generator(tiny, path)

    def widen(meta):
        config = json.loads(meta["config"])
        config["embedder"]["channel_max"] = 2 * config["embedder"]["channel_max"]
        meta["config"] = json.dumps(config)

    rewrite_metadata(path, widen)
    with pytest.raises(CheckpointError) as e:
        load_generator(path)
    msg = one_line(e.value)
    assert str(path) in msg and "shape mismatch" in msg and "embedder.backbone" in msg


def test_foreign_safetensors_and_bad_config(tiny, tmp_path):
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a 3D-GAN Studio generator"):
        load_generator(foreign)

    path = tmp_path / "g.safetensors"
    save_generator(tiny, path)
    rewrite_metadata(path, lambda m: m.update(config='{"format": 2, "bogus_key": 1}'))
    with pytest.raises(CheckpointError, match="bogus_key"):
        load_generator(path)

    rewrite_metadata(path, lambda m: m.update(method="stylegan9"))
    with pytest.raises(CheckpointError, match="unknown generator method 'stylegan9'"):
        load_generator(path)


def test_missing_tensor_is_named(tiny, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = tmp_path / "g.safetensors"
    save_generator(tiny, path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys() if k != "decoder.net.net.0.weight"}
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match=r"missing: decoder\.net\.net\.0\.weight"):
        load_generator(path)


def test_atomic_write_bytes_replaces_whole_file(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"a" * 100)
    atomic_write_bytes(path, b"b" * 10)
    assert path.read_bytes() == b"b" * 10


def test_open_generator_presets_are_seeded():
    a = open_generator("tiny", seed=5)
    b = open_generator("preset:tiny", seed=5)
    assert torch.equal(a.mapping_network.fc0.weight, b.mapping_network.fc0.weight)
    with pytest.raises(CheckpointError, match="no such file"):
        open_generator("not-a-preset")


def test_atomic_output_gives_normal_permissions(tmp_path):
    from models.checkpoint import atomic_write_bytes

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "x.bin", b"data")
    finally:
        os.umask(old)
    assert (tmp_path / "x.bin").stat().st_mode & 0o777 == 0o644


def test_a_named_pipe_is_refused_at_once(tmp_path):
    """Bug: a FIFO named *.safetensors blocked the format sniffing forever (nobody writes to it)."""
    import multiprocessing

    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)

    def load(queue):
        try:
            load_generator(fifo)
        except CheckpointError as e:
            queue.put(str(e))

    queue = multiprocessing.get_context("fork").Queue()
    proc = multiprocessing.get_context("fork").Process(target=load, args=(queue,))
    proc.start()
    proc.join(timeout=20)
    blocked = proc.is_alive()
    if blocked:
        proc.kill()
    assert not blocked, "load_generator blocked on a named pipe"
    assert queue.get(timeout=5) == f"{fifo}: is not a regular file (a pipe, socket or device), not a checkpoint file"
