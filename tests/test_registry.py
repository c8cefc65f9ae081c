"""Registered components: one class per kind with its own typed config, facts on the class, and
the kind name written only where configs are read and written."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import textwrap
from dataclasses import dataclass

import pytest
import torch

from models.build import build_eg3d, build_pipeline
from models.methods import PIPELINE_PRESET_NAMES, pipeline_preset
from models.pipeline_config import SLOTS, PipelineConfig, component_choices
from models.protocol import Generator
from models.registry import ComponentConfig, Registry
from models.scene import RenderOptions

REGISTRIES = sorted(SLOTS.items())


@pytest.mark.parametrize("slot,registry", REGISTRIES, ids=[name for name, _ in REGISTRIES])
def test_every_kind_has_its_own_documented_config(slot, registry):
    """Each kind's Config is its own dataclass (not shared with another kind), registered under the
    kind's name, and every field it declares carries a one-line docstring."""
    assert registry.kinds(), f"no {slot} registered"
    configs = set()
    for kind in registry.kinds():
        cls = registry.get(kind)
        assert cls.kind == kind and cls.Config.kind == kind
        assert cls.Config not in configs, f"{slot} {kind!r} shares its Config class"
        configs.add(cls.Config)
        config = registry.default_config(kind)
        assert registry.config_from_dict(json.loads(json.dumps(config.to_dict()))) == config
        for klass in cls.Config.__mro__:
            if klass in (ComponentConfig, object) or not dataclasses.is_dataclass(klass):
                continue
            body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
            for i, node in enumerate(body):
                if isinstance(node, ast.AnnAssign):
                    doc = body[i + 1] if i + 1 < len(body) else None
                    assert isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant), (
                        f"{slot} {kind!r}: field {node.target.id} has no docstring")


def test_registry_refuses_duplicates_and_names_unknown_kinds():
    registry = Registry("widget")

    @registry.register("round")
    class Round:
        @dataclass
        class Config(ComponentConfig):
            radius: float = 1.0
            """Radius."""

    with pytest.raises(ValueError, match="widget 'round' is registered twice"):
        registry.register("round")(type("Other", (), {"Config": Round.Config}))
    with pytest.raises(ValueError, match="unknown widget 'square'; expected one of round"):
        registry.get("square")
    with pytest.raises(ValueError, match="unknown widget 'round' config keys: colour"):
        registry.config_from_dict({"kind": "round", "colour": 1})
    with pytest.raises(TypeError, match="needs its own nested Config"):
        registry.register("bare")(type("Bare", (), {}))
    assert registry.config_from_dict({"kind": "round", "radius": 2}) == Round.Config(radius=2)


def test_command_line_choices_are_the_registered_kinds():
    choices = component_choices()
    assert set(choices) == {"embedder", "decoder", "mapping", "upsampler", "density", "integrator"}
    for name, kinds in choices.items():
        assert kinds == SLOTS[name].kinds()


def test_no_component_kind_string_is_compared_outside_config_reading():
    """Facts live on the classes: the generator and the config's validation ask the classes, never
    compare kind names (``x.kind == 'triplane'``)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    offenders = []
    for path in sorted((root / "models").rglob("*.py")) + sorted((root / "training").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            kind = any(isinstance(s, ast.Attribute) and s.attr == "kind" for s in sides)
            literal = any(isinstance(s, ast.Constant) and isinstance(s.value, str) for s in sides)
            if kind and literal:
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not offenders, "kind strings compared in: " + ", ".join(offenders)


GENERATORS = [name for name in PIPELINE_PRESET_NAMES if name.endswith("-tiny")]


@pytest.mark.parametrize("name", GENERATORS + ["eg3d:tiny"])
def test_every_generator_keeps_the_contract_and_renders_without_being_edited(name):
    torch.manual_seed(0)
    G = (build_eg3d(name.split(":")[1]) if name.startswith("eg3d:") else build_pipeline(name)).eval()
    assert isinstance(G, Generator)
    live = dict(G.rendering_kwargs)
    ws = G.mapping(torch.randn(1, G.z_dim), G.default_camera())
    scene = G.planes(ws)
    camera = G.default_camera(yaw=0.2)
    r = int(G.neural_rendering_resolution)
    with torch.no_grad():
        default = G.render_neural(scene, camera, r)
        fewer = G.render_neural(scene, camera, r, RenderOptions(num_coarse=4, num_fine=0, density_noise=0.0))
    assert G.rendering_kwargs == live, "rendering edited the model's live settings"
    assert default[0].shape == fewer[0].shape
    # Per-call options are the same thing as the live defaults set to those values.
    G.rendering_kwargs.update(depth_resolution=4, depth_resolution_importance=0)
    with torch.no_grad():
        edited = G.render_neural(scene, camera, r)
    assert torch.equal(edited[0], fewer[0]) and torch.equal(edited[1], fewer[1])


def test_eg3d_is_a_preset_of_the_one_generator():
    """EG3D builds the same class as every other method; only its config differs."""
    assert type(build_eg3d("tiny")) is type(build_pipeline("pigan-tiny"))
    config = build_eg3d("tiny").config
    assert isinstance(config, PipelineConfig) and config.preset == "eg3d"
    assert pipeline_preset("eg3d").embedder.axes == "official"
