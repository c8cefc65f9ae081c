"""The loss-term registry: every named regulariser is registered with a typed config read from the
saved loss config's fields, each recipe's loss is built from its terms by name, a zero weight
switches a term off, and the one driver runs them in its phases."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import training.loss_terms as loss_terms
from ops.camera import fov_to_focal, orbit_label
from training.config import LossConfig, PipelineLossConfig
from training.distributed import init_distributed
from training.loop import Trainer
from training.loss import EG3DLoss, GANLoss
from training.loss_terms import LOSS_TERMS, LossTerm, TermConfig, build_terms
from training.pipeline_loss import PipelineLoss
from training.presets import train_preset, with_stage

BATCH = 4
TERMS = ("top_k", "pose", "real_pose", "nerf_path", "eikonal", "minimal_surface", "path_length", "density",
         "eg3d_density")
"""Every named term, in the order they run."""
RECIPE_TERMS = {
    "tiny": ("eg3d_density",),
    "eg3d-sdf-tiny": ("eikonal", "minimal_surface"),
    "pigan-tiny": ("top_k", "pose"),
    "gram-tiny": ("pose", "real_pose"),
    "stylesdf-tiny": ("pose", "eikonal", "minimal_surface"),
    "stylesdf-tiny-stage2": ("path_length",),
    "volumegan-tiny": ("path_length",),
    "stylenerf-tiny": ("nerf_path", "path_length"),
    "graf-tiny": (),
    "giraffe-tiny": (),
    "epigraf-tiny": (),
}


def pose_labels(n: int = 16):
    g = torch.Generator().manual_seed(0)
    yaw, pitch = torch.randn(n, generator=g) * 0.3, torch.randn(n, generator=g) * 0.15
    return orbit_label(yaw, pitch, 1.0, (0.0, 0.0, 0.0), fov_to_focal(12.0)).numpy()


def preset(name: str):
    if name == "stylesdf-tiny-stage2":
        return with_stage(train_preset("stylesdf-tiny"), 2)
    return train_preset(name)


def make_trainer(name: str, **loss_fields) -> Trainer:
    config = preset(name)
    config.batch = BATCH
    for key, value in loss_fields.items():
        setattr(config.loss, key, value)
    return Trainer(config, init_distributed(1, "cpu"), pose_labels())


def test_every_named_term_is_registered_with_a_typed_config():
    assert LOSS_TERMS.kinds() == TERMS
    pipeline_fields = {f.name for f in dataclasses.fields(PipelineLossConfig)}
    for kind in TERMS:
        cls = LOSS_TERMS.get(kind)
        assert issubclass(cls, LossTerm) and cls.kind == kind
        assert issubclass(cls.Config, TermConfig) and cls.Config.kind == kind
        # Terms read the saved loss config's own field names, so saved runs keep loading.
        assert set(cls.fields.values()) <= pipeline_fields, kind
        assert set(cls.fields) <= {f.name for f in dataclasses.fields(cls.Config)}, kind
    with pytest.raises(ValueError, match="unknown loss term 'nope'; expected one of top_k"):
        LOSS_TERMS.get("nope")


@pytest.mark.parametrize("name", RECIPE_TERMS)
def test_a_recipe_builds_its_terms_by_name(name):
    trainer = make_trainer(name)
    loss = trainer.loss
    eg3d = name in ("tiny", "eg3d-sdf-tiny")
    assert isinstance(loss, GANLoss) and isinstance(loss, EG3DLoss if eg3d else PipelineLoss)
    assert loss.term_names == RECIPE_TERMS[name]
    assert all(isinstance(loss.term(kind), LOSS_TERMS.get(kind)) for kind in loss.term_names)


def test_term_configs_carry_the_recipe_values():
    loss = make_trainer("stylesdf-tiny").loss
    c = loss.config
    assert loss.term("pose").config == LOSS_TERMS.get("pose").Config(weight=c.pose_weight, loss="smooth_l1")
    assert loss.term("eikonal").config.weight == c.eikonal_weight == 0.1
    assert loss.term("minimal_surface").config.points == c.geometry_points
    eg3d = make_trainer("tiny").loss.term("eg3d_density").config
    assert (eg3d.weight, eg3d.p_dist, eg3d.reg_type) == (0.25, 0.004, "l1")  # from the generator's rendering_kwargs


def test_a_zero_weight_switches_a_term_off():
    assert build_terms(PipelineLossConfig(), None) == []  # every weight 0 by default
    names = lambda **fields: tuple(t.kind for t in build_terms(PipelineLossConfig(**fields), None))  # noqa: E731
    assert names(pose_weight=1.0) == ("pose",)
    assert names(real_pose_weight=1.0, pl_weight=2.0, density_reg=0.25) == ("real_pose", "path_length", "density")
    assert names(eikonal_weight=0.1) == ("eikonal",)
    assert names(topk_start=0.5) == ("top_k",) and names(topk_interval_kimg=1.0) == ("top_k",)
    assert names(nerf_path_weight=2.0, nerf_path_points=0) == ("nerf_path",)

    # In a built loss: StyleSDF without the eikonal keeps the minimal surface, and stops logging the eikonal.
    trainer = make_trainer("stylesdf-tiny", eikonal_weight=0.0)
    assert trainer.loss.term_names == ("pose", "minimal_surface")
    trainer.G.requires_grad_(True)
    c = trainer.sample_poses(BATCH)
    stats = trainer.loss.accumulate_gradients("Gmain", torch.zeros(BATCH, 3, 16, 16), c,
                                              torch.randn(BATCH, trainer.G.z_dim), c, gain=1, cur_nimg=0)
    assert "loss/G_minimal_surface" in stats and "loss/G_pose" in stats and "loss/G_eikonal" not in stats

    # EG3D's density regulariser is off with a zero density_reg in the generator's rendering config.
    config = train_preset("tiny")
    config.batch = BATCH
    config.generator.extra["density_reg"] = 0.0
    trainer = Trainer(config, init_distributed(1, "cpu"), pose_labels())
    assert trainer.loss.term_names == ()
    trainer.G.requires_grad_(True)
    c = trainer.sample_poses(BATCH)
    z = torch.randn(BATCH, trainer.G.z_dim)
    assert trainer.loss.accumulate_gradients("Greg", torch.zeros(BATCH, 3, 64, 64), c, z, c, gain=4, cur_nimg=0) == {}
    assert all(p.grad is None for p in trainer.G.parameters())
    assert build_terms(LossConfig(), trainer.G) == []


def test_eikonal_and_minimal_surface_share_one_sdf_evaluation(monkeypatch):
    trainer = make_trainer("stylesdf-tiny")
    calls = []
    geometry = loss_terms.sdf_geometry

    def counted(*args, **kwargs):
        calls.append(args[-1])
        return geometry(*args, **kwargs)

    monkeypatch.setattr(loss_terms, "sdf_geometry", counted)
    trainer.G.requires_grad_(True)
    c = trainer.sample_poses(BATCH)
    stats = trainer.loss.accumulate_gradients("Gmain", torch.zeros(BATCH, 3, 16, 16), c,
                                              torch.randn(BATCH, trainer.G.z_dim), c, gain=1, cur_nimg=0)
    assert calls == [trainer.config.loss.geometry_points]
    assert "loss/G_eikonal" in stats and "loss/G_minimal_surface" in stats


def test_eg3d_sdf_head_starts_from_the_sphere_and_carries_the_eikonal_through_the_triplanes():
    """``eg3d-sdf-tiny``: EG3D's driver runs StyleSDF's sphere initialisation and SDF terms on the
    tri-plane SDF head; the eikonal's double backward reaches the tri-plane backbone."""
    torch.manual_seed(0)
    trainer = make_trainer("eg3d-sdf-tiny", sdf_sphere_init_steps=150)
    G = trainer.G
    points = (torch.rand(2, 256, 3, generator=torch.Generator().manual_seed(1)) - 0.5) * 0.9
    radius = (G.config.points.far - G.config.points.near) / 4

    def sphere_error() -> float:
        with torch.no_grad():
            ws = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(2)), G.default_camera(2))
            sdf = G.sample_mixed(points, torch.zeros_like(points), ws)["sdf"][..., 0]
        return float((sdf - (points.norm(dim=-1) - radius)).square().mean().sqrt())

    before = sphere_error()
    messages = []
    trainer.initialize(messages.append)
    after = sphere_error()
    assert messages and messages[0].startswith("SDF sphere initialisation: 150 steps")
    # Untrained: an arbitrary field (rms error 0.43 here); 150 steps fit it to ~0.09 (400 in the recipe: ~0.05).
    assert before > 0.3 and after < 0.3 * before and after < 0.12, (before, after)
    assert torch.equal(trainer.G_ema.renderer.sdf_alpha, G.renderer.sdf_alpha)

    G.requires_grad_(True)
    c = trainer.sample_poses(BATCH)
    stats = trainer.loss.accumulate_gradients("Gmain", torch.zeros(BATCH, 3, 64, 64), c,
                                              torch.randn(BATCH, G.z_dim), c, gain=1, cur_nimg=0)
    assert torch.isfinite(stats["loss/G_eikonal"]).all() and torch.isfinite(stats["loss/G_minimal_surface"]).all()
    backbone = [p for name, p in G.named_parameters() if name.startswith("embedder.backbone.")]
    assert backbone and all(p.grad is not None and torch.isfinite(p.grad).all() for p in backbone)


def test_the_loss_state_keeps_its_format():
    """The path-length mean is the loss state, as before the terms: EG3D saves nothing, every
    pipeline method saves ``pl_mean`` (0 without the term)."""
    assert make_trainer("tiny").loss.state_dict() == {}
    graf = make_trainer("graf-tiny").loss
    assert graf.state_dict().keys() == {"pl_mean"} and float(graf.state_dict()["pl_mean"]) == 0.0
    graf.load_state_dict({"pl_mean": torch.tensor(0.0)})
    loss = make_trainer("volumegan-tiny").loss
    assert loss.state_dict().keys() == {"pl_mean"}
    loss.load_state_dict({"pl_mean": torch.tensor(1.5)})
    assert float(loss.pl_mean) == 1.5 and float(loss.term("path_length").pl_mean) == 1.5
    assert float(loss.state_dict()["pl_mean"]) == 1.5
