"""The typed config of the modular 3D-aware GAN pipeline, its validation, ablation swaps and CPU sizing.

A generator is composed of a mapping network, a pose sampler, a point sampler, a point embedder,
a feature decoder, a density activation, an integrator and an upsampler. Each slot holds the
config of one registered kind (``models.registry``): only that kind's fields, and the kind's
facts on its class. A method is a preset of this config (``models/methods/<method>.py``); an
ablation replaces one component (:func:`with_component`); :func:`tiny` is the same method at CPU
size. Facts and sources: ``../shared/docs/methods.md``.

World scale is per method, as in the original code: pi-GAN's family looks at the origin from
radius 1 with a 12 degree field of view, GRAF from radius 10, GIRAFFE from 2.732, EpiGRAF from
radius 1. Everything the app needs to frame a model (average radius, pivot, field of view, the
box the scene lives in) is in the config, so the viewer needs no per-method code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from models.decoders import DECODERS
from models.embedders import EMBEDDERS
from models.mappings import MAPPINGS
from models.point_sampling import PATCH_SAMPLERS, POINT_SAMPLERS
from models.poses import POSE_SAMPLERS
from models.registry import ComponentConfig, Registry
from models.typed_config import check_values, dataclass_from_dict
from models.upsamplers import UPSAMPLERS
from models.volume_rendering import DENSITIES, INTEGRATORS
from ops.camera import PIXEL_GRIDS, RAY_MODES

FORMAT = 2
"""Config layout version: 2 = one registered kind per slot; 1 (no ``format`` key) = the lumped
component dataclasses of the first pipeline, read by :func:`_from_format_1`."""

SLOTS: dict[str, Registry] = {
    "mapping": MAPPINGS, "pose": POSE_SAMPLERS, "points": POINT_SAMPLERS, "embedder": EMBEDDERS,
    "decoder": DECODERS, "density": DENSITIES, "integrator": INTEGRATORS, "upsampler": UPSAMPLERS,
}
"""The config slots that hold registered components, and their registries."""

SWAPPABLE = ("embedder", "decoder", "mapping", "upsampler", "density", "integrator")
"""Components the command line swaps (``--embedder volume --decoder siren``)."""


def component_choices() -> dict[str, tuple[str, ...]]:
    """The registered kinds of each swappable component (the command line's ablation choices)."""
    return {name: SLOTS[name].kinds() for name in SWAPPABLE}


@dataclass
class RenderingOptions:
    """Volume-rendering settings that are not a component."""

    density_noise: float = 0.0
    """Initial std of Gaussian noise added to raw density in training."""
    density_noise_fade_kimg: float = 0.0
    """kimg over which the noise falls linearly to 0 (0: constant)."""
    white_back: bool = False
    """Composite onto white."""
    lock_view_dependence: bool = False
    """Default of ``RenderOptions.lock_view_dependence``: every sample sees the frontal view direction."""
    pixel_grid: str = "centers"
    """Where the pixels sample the camera's image plane (``ops.camera.PIXEL_GRIDS``): 'centers' (EG3D:
    the fov spans the image edges), 'corners' (pi-GAN, GRAM: it spans the outer pixel centres) or
    'integers' (GRAF: rays through integer pixel coordinates, half a pixel off the centres)."""
    rays: str = "world"
    """How rays and coarse points are formed (``ops.camera.RAY_MODES``): 'world' (world directions, points
    o + d z), 'camera_frame' (VolumeGAN's float32 order: directions normalised in the camera frame and
    rotated, coarse points mapped by the 4x4 cam2world; needs the 'corners' grid) or 'axis' (GRAF's
    nerf-pytorch order: unnormalised rays R (x, y, 1), coarse points o + rays t with t the depth along the
    optical axis; with ``points.depth_along_axis``). Same rays up to round-off, which VolumeGAN's steep
    fields and GRAF's infinite last interval amplify."""
    camera_frame_views: bool = False
    """The decoder reads each ray's unit direction in the camera's own OpenGL frame, the same for every
    pose (StyleSDF's ``static_viewdirs``), not its world direction."""
    random_at_eval: bool = False
    """Jitter the coarse depths and draw the importance samples at random in eval mode too (EpiGRAF's
    official forward, which its scripts render with); off: the deterministic rule (linspace depths,
    fixed quantiles)."""

    def __post_init__(self):
        if self.pixel_grid not in PIXEL_GRIDS:
            raise ValueError(f"renderer.pixel_grid {self.pixel_grid!r} is not one of {', '.join(PIXEL_GRIDS)}")
        if self.rays not in RAY_MODES:
            raise ValueError(f"renderer.rays {self.rays!r} is not one of {', '.join(RAY_MODES)}")
        if self.rays == "camera_frame" and self.pixel_grid != "corners":
            raise ValueError("renderer.rays 'camera_frame' needs renderer.pixel_grid 'corners'")


@dataclass
class PipelineConfig:
    """A generator composed of registered pipeline components."""

    preset: str = "pigan"
    """Method preset this config started from (for display and the README table)."""
    c_dim: int = 25
    """Camera label size (the internal camera is always EG3D's 25-float label)."""
    img_resolution: int = 64
    """Final image resolution."""
    img_channels: int = 3
    """Image channels."""
    neural_rendering_resolution: int = 64
    """Volume-rendering resolution (equals img_resolution without an upsampler)."""
    mapping: ComponentConfig = field(default_factory=lambda: MAPPINGS.default_config("film"))
    """Mapping network (``models.mappings``)."""
    pose: ComponentConfig = field(default_factory=lambda: POSE_SAMPLERS.default_config("prior"))
    """Pose sampler (``models.poses``)."""
    points: ComponentConfig = field(default_factory=lambda: POINT_SAMPLERS.default_config("stratified"))
    """Point sampler (``models.point_sampling``)."""
    embedder: ComponentConfig = field(default_factory=lambda: EMBEDDERS.default_config("coordinate"))
    """Point embedder (``models.embedders``)."""
    decoder: ComponentConfig = field(default_factory=lambda: DECODERS.default_config("siren"))
    """Feature decoder (``models.decoders``)."""
    density: ComponentConfig = field(default_factory=lambda: DENSITIES.default_config("relu"))
    """Density activation (``models.volume_rendering``)."""
    integrator: ComponentConfig = field(default_factory=lambda: INTEGRATORS.default_config("last_delta"))
    """Integrator (``models.volume_rendering``)."""
    upsampler: ComponentConfig = field(default_factory=lambda: UPSAMPLERS.default_config("none"))
    """Upsampler (``models.upsamplers``)."""
    renderer: RenderingOptions = field(default_factory=RenderingOptions)
    """Volume-rendering settings that are not components."""
    frozen: tuple[str, ...] = ()
    """Modules whose parameters do not train (StyleSDF stage 2 freezes the volume renderer)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Settings the generator does not read, kept for the tools that do and for round trips (EG3D's
    loss settings and unknown official ``rendering_kwargs``); they appear in ``G.rendering_kwargs``."""
    method: str = "pipeline"
    """Generator family; selects the class that builds this config (checkpoints)."""
    format: int = FORMAT
    """Config layout version."""

    def __post_init__(self):
        for name, registry in SLOTS.items():
            setattr(self, name, registry.config_from_dict(getattr(self, name)))
        if isinstance(self.renderer, dict):
            self.renderer = dataclass_from_dict(RenderingOptions, self.renderer, "renderer config")
        self.frozen = tuple(self.frozen)

    def cls(self, slot: str) -> type:
        """The registered class of a slot's component (where its facts live)."""
        return SLOTS[slot].cls_of(getattr(self, slot))

    @property
    def z_dim(self) -> int:
        return self.mapping.z_dim

    def codes_needed(self) -> int:
        """z entries the decoder's codes read over every field (GRAF, GIRAFFE)."""
        per_field = self.cls("decoder").codes_dim(self.decoder)
        return self.cls("embedder").codes_needed(self.embedder, per_field)

    @property
    def patch_sampler(self) -> type:
        """The patch sampler class of patch-wise training (``crops`` False: whole images)."""
        return PATCH_SAMPLERS.get(self.points.patch)

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent or out-of-range setting."""
        check_values(self, "generator")
        self._check_geometry()
        for name, registry in SLOTS.items():
            registry.cls_of(getattr(self, name))
        POINT_SAMPLERS.build(self.points)  # checks the jitter and patch sampler names
        mapping, embedder, decoder = self.cls("mapping"), self.cls("embedder"), self.cls("decoder")
        upsampler, density, integrator = self.cls("upsampler"), self.cls("density"), self.cls("integrator")
        if upsampler.identity and self.neural_rendering_resolution != self.img_resolution:
            raise ValueError(f"without an upsampler the neural rendering resolution ({self.neural_rendering_resolution}) "
                             f"must equal the image resolution ({self.img_resolution})")
        if decoder.outputs_sdf != density.sdf:
            raise ValueError(f"decoder {decoder.kind!r} and density {density.kind!r} do not match: "
                             "SDF densities need an SDF decoder and it needs one of them")
        if embedder.needs_constant_interval and not integrator.constant_interval:
            raise ValueError(f"the {embedder.kind!r} embedder composites with a constant-interval integrator, "
                             f"not {integrator.kind!r}")
        if decoder.reads_coordinates and not embedder.gives_coordinates:
            givers = " or ".join(repr(k) for k in EMBEDDERS.kinds() if EMBEDDERS.get(k).gives_coordinates)
            raise ValueError(f"decoder {decoder.kind!r} reads 3-d coordinates: use the {givers} embedder, "
                             f"not {embedder.kind!r}")
        provides, needs = mapping.provides, decoder.needs_ws
        if provides == "film" and needs != "film":
            raise ValueError(f"FiLM mapping drives FiLM-SIREN decoders, not {decoder.kind!r}")
        if provides == "film" and upsampler.needs_stylegan_ws:
            raise ValueError(f"upsampler {upsampler.kind!r} needs StyleGAN2 ws, not the FiLM mapping's")
        if needs in ("film", "z") and provides != needs:
            raise ValueError(f"decoder {decoder.kind!r} reads {needs!r} ws: use a mapping that provides them, "
                             f"not {mapping.kind!r}")
        if embedder.needs_codes and needs != "z":
            raise ValueError(f"the {embedder.kind!r} embedder needs a decoder that reads codes from z, not {decoder.kind!r}")
        if provides == "z" and needs == "z" and self.mapping.z_dim != self.codes_needed():
            raise ValueError(f"mapping.z_dim is {self.mapping.z_dim} but the decoder's codes need {self.codes_needed()}")

    def _check_geometry(self) -> None:
        """The sizes every renderer divides by or samples within: at least one sample per ray, a box of
        positive size, near before far, and bounds whose minimum is below their maximum on every axis."""
        points = self.points
        if getattr(points, "num_coarse", 1) < 1:
            raise ValueError(f"points.num_coarse is {points.num_coarse}: a ray needs at least one sample")
        box = getattr(points, "box_side", 1.0)
        if isinstance(box, (int, float)) and box <= 0:
            raise ValueError(f"points.box_side is {box}: the scene's box must have a positive size")
        near, far = getattr(points, "near", 0.0), getattr(points, "far", 1.0)
        if isinstance(near, (int, float)) and isinstance(far, (int, float)) and not 0 <= near < far:
            raise ValueError(f"points.near {near} and far {far}: need 0 <= near < far")
        for slot in SLOTS:
            component = getattr(self, slot)
            for f in dataclasses.fields(component):
                value = getattr(component, f.name)
                if f.name.endswith("bounds") and isinstance(value, (list, tuple)) and len(value) == 2:
                    low, high = value
                    if len(low) != len(high) or not all(a < b for a, b in zip(low, high, strict=True)):
                        raise ValueError(f"{slot}.{f.name} {value}: the minimum must be below the maximum on every axis")

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in SLOTS:
            data[name] = data[name].to_dict()
        data["renderer"] = dataclasses.asdict(self.renderer)
        data["frozen"] = list(self.frozen)
        data["extra"] = dict(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineConfig:
        """Inverse of :meth:`to_dict` (and reader of format-1 configs); unknown keys are an error."""
        if not isinstance(data, dict):
            raise ValueError(f"a pipeline config must be a dict, got {type(data).__name__}")
        if "format" not in data:
            data = _from_format_1(data)
        return dataclass_from_dict(cls, data)

    def copy(self) -> PipelineConfig:
        return PipelineConfig.from_dict(self.to_dict())


# --- format 1 (lumped component configs) ------------------------------------------------------------

_FORMAT_1_NAMES: dict[tuple[str, str], dict[str, str]] = {
    ("embedder", "triplane"): {"resolution": "triplane_resolution", "channels": "triplane_channels",
                               "axes": "triplane_axes", "align_corners": "triplane_align_corners"},
    ("embedder", "volume"): {"resolution": "volume_resolution", "channels": "volume_channels",
                             "base_channels": "volume_base_channels", "bounds": "volume_bounds"},
    ("embedder", "manifold"): {"hidden": "manifold_hidden", "layers": "manifold_layers", "center": "manifold_center"},
    ("decoder", "sdf_siren"): {"feature_dim": "sdf_feature_dim"},
    ("upsampler", "eg3d_sr"): {"module": "sr_module"},
    ("density", "sdf_sigmoid"): {"alpha_init": "sdf_alpha_init"},
    ("density", "sdf_laplace"): {"alpha_init": "sdf_alpha_init"},
    ("integrator", "constant_delta"): {"delta": "constant_delta"},
}
"""Format-1 field names of format-2 fields, per (slot, kind), where they differ."""


def _from_format_1(data: dict[str, Any]) -> dict[str, Any]:
    """A format-1 config dict as format 2: each slot keeps its kind's own fields (renamed where
    they were prefixed); fields one component read from another move to it."""
    data = dict(data)
    try:
        old = {name: dict(data.pop(name)) for name in ("mapping", "pose", "points", "embedder", "decoder", "renderer",
                                                         "upsampler") if name in data}
        renderer = old.pop("renderer", {})
        old["points"]["kind"] = "stratified"
        old["density"] = {**renderer, "kind": renderer.get("density", "relu")}
        old["integrator"] = {**renderer, "kind": renderer.get("integrator", "last_delta")}
        old["decoder"]["dir_frequencies"] = old["embedder"].get("dir_pe_frequencies", 0)
        for key in ("background_hidden", "background_layers", "background_z_dim"):
            if key in old["decoder"]:
                old["embedder"][key] = old["decoder"][key]
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"not a pipeline config (format 1): {error}") from None
    for slot, values in old.items():
        registry = SLOTS[slot]
        cls = registry.get(values.get("kind"))
        names = _FORMAT_1_NAMES.get((slot, cls.kind), {})
        fields = {f.name: values[names.get(f.name, f.name)] for f in dataclasses.fields(cls.Config)
                  if names.get(f.name, f.name) in values}
        data[slot] = {"kind": cls.kind, **fields}
    data["renderer"] = {k: renderer[k] for k in ("density_noise", "density_noise_fade_kimg", "white_back") if k in renderer}
    data["format"] = FORMAT
    return data


# --- ablation swaps --------------------------------------------------------------------------------

def swapped(registry: Registry, old: ComponentConfig, kind: str) -> ComponentConfig:
    """A config of ``kind`` with the defaults of that kind and the values of the fields it shares
    with ``old`` (a swap keeps widths and sizes where the two kinds have the same field)."""
    cls = registry.get(kind)
    new = cls.Config()
    if type(old) is type(new):
        return old
    reset = getattr(cls, "reset_on_swap", ())
    shared = {f.name for f in dataclasses.fields(new)} & {f.name for f in dataclasses.fields(old)}
    return dataclasses.replace(new, **{name: getattr(old, name) for name in shared - set(reset)})


def _first(registry: Registry, **facts: Any) -> str:
    """The first registered kind whose class has these facts."""
    for kind in registry.kinds():
        cls = registry.get(kind)
        if all(getattr(cls, name) == value for name, value in facts.items()):
            return kind
    raise ValueError(f"no {registry.component} has {facts}")


def with_component(config: PipelineConfig, component: str, kind: str) -> PipelineConfig:
    """An ablation: ``config`` with one component replaced, and the couplings that swap implies,
    read from the classes' facts (a FiLM-SIREN decoder brings the FiLM mapping, and drops a StyleGAN
    upsampler that would need StyleGAN2 ws; an SDF decoder brings an SDF density; no upsampler
    renders at the image resolution, ...). Raises ValueError for unknown kinds and for
    combinations that cannot work."""
    if component not in SWAPPABLE:
        raise ValueError(f"unknown component {component!r}; swappable: {', '.join(SWAPPABLE)}")
    registry = SLOTS[component]
    registry.get(kind)
    c = config.copy()
    old_decoder, old_upsampler = c.cls("decoder"), c.cls("upsampler")
    setattr(c, component, swapped(registry, getattr(c, component), kind))
    if component == "embedder":
        c.cls("embedder").on_swap_in(c)
    embedder = c.cls("embedder")
    alternative = c.cls("decoder").coordinate_alternative
    if c.cls("decoder").reads_coordinates and not embedder.gives_coordinates and alternative is not None:
        c.decoder = swapped(DECODERS, c.decoder, alternative)
    decoder = c.cls("decoder")
    if decoder is not old_decoder and component != "mapping":
        provides = decoder.needs_ws or "stylegan"
        if c.cls("mapping").provides != provides:
            c.mapping = swapped(MAPPINGS, c.mapping, _first(MAPPINGS, provides=provides))
        if c.cls("density").sdf != decoder.outputs_sdf:
            c.density = swapped(DENSITIES, c.density, decoder.preferred_density)
    if component != "upsampler" and c.cls("mapping").provides == "film" and c.cls("upsampler").needs_stylegan_ws:
        c.upsampler = UPSAMPLERS.default_config(_first(UPSAMPLERS, identity=True))  # render at full size instead
    if component == "integrator":
        pass  # the swapped integrator stays; validate() refuses one the embedder cannot use
    elif embedder.needs_constant_interval and not c.cls("integrator").constant_interval:
        c.integrator = swapped(INTEGRATORS, c.integrator, _first(INTEGRATORS, constant_interval=True))
    elif not embedder.needs_constant_interval and c.cls("integrator").constant_interval:
        c.integrator = swapped(INTEGRATORS, c.integrator, _first(INTEGRATORS, constant_interval=False, reads_raw=False))
    if c.cls("upsampler").identity:
        c.neural_rendering_resolution = c.img_resolution
    elif old_upsampler.identity:
        c.neural_rendering_resolution = max(c.img_resolution // 4, 16)
    if c.cls("mapping").provides == "z" and decoder.needs_ws == "z":
        c.mapping.z_dim = c.codes_needed()
    c.validate()
    return c


# --- CPU size -------------------------------------------------------------------------------------

def tiny(config: PipelineConfig) -> PipelineConfig:
    """The same method at CPU size: narrow layers, few samples, 32 px images (16 px neural
    rendering with an upsampler), small tri-planes and volumes. Each component class says how it
    shrinks (``tiny``); geometry, densities, integrators and pose priors are unchanged."""
    c = config.copy()
    c.preset = config.preset + "-tiny"
    for slot in ("mapping", "embedder", "decoder", "upsampler"):
        setattr(c, slot, c.cls(slot).tiny(getattr(c, slot)))
    c.points = c.cls("points").tiny(c.points, c.cls("embedder").tiny_num_coarse)
    c.img_resolution, c.neural_rendering_resolution = c.cls("upsampler").tiny_resolutions
    c.renderer = dataclasses.replace(c.renderer, density_noise_fade_kimg=min(c.renderer.density_noise_fade_kimg, 2.0))
    if c.cls("mapping").provides == "z":
        c.mapping.z_dim = c.codes_needed()
    return c
