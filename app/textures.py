"""GL 2-D textures that show torch frames, and the tensor -> texture layout conversion.

Conventions (read these before drawing a ``Texture2D``):

* **Texture row 0 = image top row.** A frame is an [H, W, C] tensor in row-major order, top row
  first, and it is uploaded as is (no flip, no copy to reorder rows). OpenGL puts texture
  coordinate t = 0 at row 0, so t = 0 is the *top* of the image: a quad that shows the image upright
  maps its top edge to t = 0 and its bottom edge to t = 1 (i.e. the display flips t relative to the
  usual "t = 0 at the bottom" habit). ``read_back`` returns rows in the same order (row 0 = top).
* Formats (``TextureFormat``), 1 or 4 channels only because CUDA cannot register 3-channel textures:

  - ``"rgba8"``:   GL_RGBA8,   torch.uint8   [H, W, 4]
  - ``"r32f"``:    GL_R32F,    torch.float32 [H, W, 1]  (depth)
  - ``"rgba32f"``: GL_RGBA32F, torch.float32 [H, W, 4]  (normals, ...)

* ``tensor_for_texture`` is the one place that turns renderer layouts ([C, H, W], [H, W, 3],
  [1, H, W] depth, ...) into the contiguous [H, W, C] tensor a format takes.
* Every method here issues GL calls: call them on the thread whose GL context is current (the UI
  thread). Methods bind the texture on the currently active texture unit.
"""

from __future__ import annotations

import ctypes
import itertools
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch
from OpenGL import GL

# Raw entry points: PyOpenGL's wrapped image calls convert arrays and silently reset pixel-store
# state (pack/unpack alignment, ...) as a side effect; these take a plain pointer and do neither.
from OpenGL.raw.GL.VERSION.GL_1_0 import glGetTexImage as _raw_glGetTexImage
from OpenGL.raw.GL.VERSION.GL_1_0 import glTexImage2D as _raw_glTexImage2D
from OpenGL.raw.GL.VERSION.GL_1_1 import glTexSubImage2D as _raw_glTexSubImage2D

TextureFormat = Literal["rgba8", "r32f", "rgba32f"]
FilterMode = Literal["nearest", "linear"]


@dataclass(frozen=True)
class FormatSpec:
    """How one ``TextureFormat`` is stored in GL and held in torch."""

    internal_format: int
    """Sized GL internal format (GL_RGBA8, ...)."""
    gl_format: int
    """Pixel transfer format (GL_RGBA / GL_RED)."""
    gl_type: int
    """Pixel transfer type (GL_UNSIGNED_BYTE / GL_FLOAT)."""
    channels: int
    dtype: torch.dtype
    np_dtype: type

    @property
    def itemsize(self) -> int:
        return torch.empty((), dtype=self.dtype).element_size()

    @property
    def pixel_bytes(self) -> int:
        return self.channels * self.itemsize


FORMATS: dict[str, FormatSpec] = {
    "rgba8": FormatSpec(GL.GL_RGBA8, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE, 4, torch.uint8, np.uint8),
    "r32f": FormatSpec(GL.GL_R32F, GL.GL_RED, GL.GL_FLOAT, 1, torch.float32, np.float32),
    "rgba32f": FormatSpec(GL.GL_RGBA32F, GL.GL_RGBA, GL.GL_FLOAT, 4, torch.float32, np.float32),
}

_FILTERS = {"nearest": GL.GL_NEAREST, "linear": GL.GL_LINEAR}

# Every allocation gets a fresh number so that caches keyed on it never confuse a reallocated
# texture (or a new texture that GL gave a recycled id) with the storage they registered.
_generations = itertools.count(1)


def format_spec(fmt: str) -> FormatSpec:
    """The ``FormatSpec`` of ``fmt``; ValueError names the valid formats."""
    try:
        return FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown texture format {fmt!r}; expected one of {sorted(FORMATS)}") from None


class Uploader(Protocol):
    """Copies [H, W, C] tensors into ``Texture2D`` storage; owns any interop registrations.

    The implementations (CUDA-GL interop, host upload) are in ``app.interop``.
    """

    name: str
    """"cuda-python", "pycuda" or "host"."""

    def upload(self, texture: Texture2D, tensor: torch.Tensor) -> None:
        """Copy ``tensor`` into ``texture``.

        ``tensor``: [H, W, C] contiguous, H x W = the texture's current size, C and dtype matching
        its format, ready on torch's current stream (``Texture2D.upload`` checks all of this and
        does the stream wait; call that rather than this).
        """
        ...

    def forget(self, texture: Texture2D) -> None:
        """Drop registrations of ``texture``'s storage (it is about to be reallocated or deleted)."""
        ...

    def close(self) -> None:
        """Drop all registrations; the uploader is not used afterwards.

        Call it while the GL context still exists and is current (before destroying the window).
        """
        ...


class Texture2D:
    """A GL 2-D texture whose storage follows the frames uploaded into it.

    Storage is allocated lazily by the first ``upload`` / ``ensure_size`` (``width == height == 0``
    until then) and reallocated whenever the frame size changes. No mipmaps; edges clamp.
    Needs a current GL context (3.3 core is enough) for construction and every method.
    """

    def __init__(self, fmt: TextureFormat, filter: FilterMode = "linear") -> None:
        self.fmt: TextureFormat = fmt
        self.spec = format_spec(fmt)
        self.width = 0
        self.height = 0
        self.generation = 0
        """Changes on every (re)allocation: the key interop registrations are cached under."""
        # Uploaders that wrote into this texture: they hold interop registrations of its storage
        # and must drop them before it is reallocated or deleted.
        self._uploaders: list[Uploader] = []
        self.id: int = int(GL.glGenTextures(1))
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.id)
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_WRAP_S, GL.GL_CLAMP_TO_EDGE)
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_WRAP_T, GL.GL_CLAMP_TO_EDGE)
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_BASE_LEVEL, 0)
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAX_LEVEL, 0)  # complete without mipmaps
        self.filter: FilterMode = "linear"
        self.set_filter(filter)

    def __repr__(self) -> str:
        return f"Texture2D(id={self.id}, fmt={self.fmt!r}, {self.width}x{self.height})"

    @property
    def shape(self) -> tuple[int, int, int]:
        """[H, W, C] of the tensors this texture takes."""
        return (self.height, self.width, self.spec.channels)

    def ensure_size(self, width: int, height: int) -> bool:
        """Allocate W x H storage unless it already has that size; True if it (re)allocated.

        Reallocation invalidates CUDA registrations: uploaders that used this texture are told
        (``Uploader.forget``) *before* the storage changes.
        """
        width, height = int(width), int(height)
        if width <= 0 or height <= 0:
            raise ValueError(f"texture size must be positive, got {width}x{height}")
        if self.id == 0:
            raise RuntimeError("texture was deleted")
        if (width, height) == (self.width, self.height):
            return False
        self._forget_everywhere()
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.id)
        s = self.spec
        _raw_glTexImage2D(GL.GL_TEXTURE_2D, 0, s.internal_format, width, height, 0, s.gl_format, s.gl_type, None)
        self.width, self.height = width, height
        self.generation = next(_generations)
        return True

    def upload(self, tensor: torch.Tensor, uploader: Uploader,
               ready_event: torch.cuda.Event | None = None) -> None:
        """Show ``tensor`` ([H, W, C], C and dtype as ``fmt`` needs, any device) in this texture.

        ``ready_event``: for a CUDA tensor produced on another stream (the render worker's), the
        event recorded after producing it. Torch's current stream is made to wait on it *before*
        anything reads the tensor (including the ``.contiguous()`` copy below), so the upload is
        ordered after the producer without blocking the CPU. Without an event the caller vouches
        that the tensor is ready on the current stream. Resizes the texture to H x W if needed.
        """
        if ready_event is not None and tensor.is_cuda:
            torch.cuda.current_stream(tensor.device).wait_event(ready_event)
        s = self.spec
        if tensor.dim() != 3 or tensor.shape[2] != s.channels:
            raise ValueError(f"{self.fmt} texture takes [H, W, {s.channels}] tensors, got {list(tensor.shape)}"
                             " (see tensor_for_texture)")
        if tensor.dtype != s.dtype:
            raise TypeError(f"{self.fmt} texture takes {s.dtype} tensors, got {tensor.dtype} (see tensor_for_texture)")
        tensor = tensor.contiguous()
        height, width = int(tensor.shape[0]), int(tensor.shape[1])
        self.ensure_size(width, height)
        if not any(u is uploader for u in self._uploaders):
            self._uploaders.append(uploader)
        uploader.upload(self, tensor)

    def bind(self, unit: int = 0) -> None:
        """Bind to texture unit ``unit`` (leaves that unit active)."""
        GL.glActiveTexture(GL.GL_TEXTURE0 + int(unit))
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.id)

    def set_filter(self, filter: FilterMode) -> None:
        """Minification and magnification filter: "nearest" (pixel-exact zoom) or "linear"."""
        if filter not in _FILTERS:
            raise ValueError(f"unknown filter {filter!r}; expected 'nearest' or 'linear'")
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.id)
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER, _FILTERS[filter])
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAG_FILTER, _FILTERS[filter])
        self.filter = filter

    def read_back(self) -> np.ndarray:
        """The texture's contents as an [H, W, C] numpy array (row 0 = image top row).

        Synchronous (waits for pending GL and, through the interop unmap, CUDA writes); for tests
        and screenshots, not per frame.
        """
        s = self.spec
        out = np.empty((self.height, self.width, s.channels), dtype=s.np_dtype)
        if out.size == 0:
            return out
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.id)
        GL.glBindBuffer(GL.GL_PIXEL_PACK_BUFFER, 0)  # a bound pack buffer would turn the pointer into an offset
        previous = int(GL.glGetIntegerv(GL.GL_PACK_ALIGNMENT))
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)  # rows of odd widths are not 4-byte aligned
        try:
            _raw_glGetTexImage(GL.GL_TEXTURE_2D, 0, s.gl_format, s.gl_type, ctypes.c_void_p(out.ctypes.data))
        finally:
            GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, previous)
        return out

    def delete(self) -> None:
        """Free the GL texture (and any interop registrations of it). Idempotent."""
        if self.id == 0:
            return
        self._forget_everywhere()
        GL.glDeleteTextures([self.id])
        self.id = 0
        self.width = self.height = 0
        self.generation = 0

    def _forget_everywhere(self) -> None:
        for uploader in self._uploaders:
            uploader.forget(self)
        self._uploaders.clear()

    # Used by uploaders: the pixel upload of host memory, with the unpack state it needs.
    def _sub_image_from_pointer(self, pointer: int) -> None:
        """glTexSubImage2D of the whole texture from ``pointer`` (host memory, tightly packed rows)."""
        s = self.spec
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.id)
        GL.glBindBuffer(GL.GL_PIXEL_UNPACK_BUFFER, 0)  # a bound unpack buffer would turn the pointer into an offset
        previous = int(GL.glGetIntegerv(GL.GL_UNPACK_ALIGNMENT))
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)  # rows of odd widths are not 4-byte aligned
        try:
            _raw_glTexSubImage2D(GL.GL_TEXTURE_2D, 0, 0, 0, self.width, self.height, s.gl_format, s.gl_type,
                                 ctypes.c_void_p(pointer))
        finally:
            GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, previous)


def tensor_for_texture(image: torch.Tensor, fmt: TextureFormat,
                       layout: Literal["auto", "chw", "hwc"] = "auto") -> torch.Tensor:
    """A render output -> the contiguous [H, W, C] tensor that a ``fmt`` texture takes (same device).

    Accepted ``image`` shapes (an optional leading batch dimension of size 1 is dropped):

    * [C, H, W] or [H, W, C] with C in {1, 3, 4}; [H, W] is one channel.
    * "rgba8" needs uint8 values (scaling floats to 0..255 is the caller's choice, not a layout
      matter); "r32f" / "rgba32f" cast to float32.
    * To RGBA: 3 channels get an opaque alpha (255 or 1.0), 1 channel is replicated to grey + alpha.
    * To "r32f": exactly one channel (depth [1, H, W] -> [H, W, 1]).

    ``layout="auto"`` reads the channel axis from the shape: the end axis whose size is 1, 3 or 4;
    if both are, the smaller one ([4, 6, 1] is HWC depth), and on a tie the first (torch's
    [C, H, W] convention: [3, 4, 3] is CHW). Pass "chw" / "hwc" for tiny images where this guesses wrong.

    On CUDA this runs on the current stream: if ``image`` came from another stream, make the
    current stream wait for it first (see ``Texture2D.upload``'s ``ready_event``).
    """
    spec = format_spec(fmt)
    if layout not in ("auto", "chw", "hwc"):
        raise ValueError(f"unknown layout {layout!r}; expected 'auto', 'chw' or 'hwc'")
    x = image.detach()
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dim() == 2:
        x = x.unsqueeze(-1)
    elif x.dim() == 3:
        if layout == "auto":
            first, last = int(x.shape[0]), int(x.shape[2])
            if first in (1, 3, 4) and last in (1, 3, 4):
                layout = "hwc" if last < first else "chw"  # both could be channels: the smaller is
            else:
                layout = "hwc" if last in (1, 3, 4) else "chw"
        if layout == "chw":
            x = x.permute(1, 2, 0)
    else:
        raise ValueError(f"expected an image [C, H, W], [H, W, C] or [H, W], got shape {list(image.shape)}")
    channels = int(x.shape[2])
    if channels not in (1, 3, 4):
        raise ValueError(f"images have 1, 3 or 4 channels, got {channels} (shape {list(image.shape)})")

    if spec.dtype == torch.uint8:
        if x.dtype != torch.uint8:
            raise TypeError(f"{fmt} takes uint8 images, got {x.dtype}; scale to 0..255 and convert first")
        opaque: float | int = 255
    else:
        x = x.to(torch.float32)
        opaque = 1.0

    if spec.channels == 1:
        if channels != 1:
            raise ValueError(f"{fmt} takes one channel, got {channels} (shape {list(image.shape)})")
        return x.contiguous()
    if channels == 4:
        return x.contiguous()
    # One allocation for the RGBA result; the copies into it also do the layout change.
    out = torch.empty((*x.shape[:2], 4), dtype=spec.dtype, device=x.device)
    out[..., :3] = x  # broadcasts a single grey channel to RGB
    out[..., 3] = opaque
    return out
