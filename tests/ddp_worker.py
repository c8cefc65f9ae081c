"""Worker for test_distributed: one rank of a 2-process gloo job launched by torchrun.

Runs two training steps with rank-specific data and records, for every optimiser step, this rank's
local gradients (before the all-reduce) and the synchronised ones (after), plus final parameters.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ops.camera import orbit_label  # noqa: E402
from training import loop  # noqa: E402
from training.config import apply_overrides  # noqa: E402
from training.distributed import all_reduce_gradients, init_distributed, shutdown  # noqa: E402
from training.presets import train_preset  # noqa: E402


def main(out_dir: str) -> None:
    torch.set_num_threads(1)
    config = apply_overrides(train_preset("tiny"), [
        "generator.points.num_coarse=4", "generator.points.num_fine=4",
        "generator.neural_rendering_resolution=16", "loss.neural_rendering_resolution_initial=16"])
    config.batch, config.gpus = 8, 2
    ctx = init_distributed(2, "cpu")
    labels = orbit_label(torch.linspace(-0.5, 0.5, 16), torch.zeros(16)).numpy()
    trainer = loop.Trainer(config, ctx, labels)

    record: dict[str, torch.Tensor] = {}
    calls = {"n": 0}

    def recording_all_reduce(params, world_size):
        params = list(params)
        n = calls["n"]
        record[f"local{n}"] = torch.cat([p.grad.flatten() for p in params]).clone()
        all_reduce_gradients(params, world_size)
        record[f"synced{n}"] = torch.cat([p.grad.flatten() for p in params]).clone()
        calls["n"] += 1

    loop.all_reduce_gradients = recording_all_reduce
    g = torch.Generator().manual_seed(100 + ctx.rank)  # different real data on each rank
    for _ in range(2):
        real = torch.randint(0, 256, (4, 3, 64, 64), generator=g, dtype=torch.uint8)
        trainer.step(real, torch.as_tensor(labels[:4]))
    record["G"] = torch.cat([p.detach().flatten() for p in trainer.G.parameters()])
    record["D"] = torch.cat([p.detach().flatten() for p in trainer.D.parameters()])
    record["G_ema"] = torch.cat([p.detach().flatten() for p in trainer.G_ema.parameters()])
    torch.save(record, Path(out_dir) / f"rank{ctx.rank}.pt")
    shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
