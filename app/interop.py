"""Getting torch frames into GL textures: CUDA-OpenGL interop, or a host upload.

Backends (``Uploader.name``):

* ``"cuda-python"`` (``CudaPythonUploader``): NVIDIA's cuda-python runtime bindings. The texture is
  registered with CUDA once per allocation; each frame maps it, copies the tensor device-to-device
  into its CUDA array on torch's current stream and unmaps it. No host round trip.
* ``"pycuda"`` (``PycudaUploader``): the same through ``pycuda.gl``, if pycuda (built with GL
  support) is installed. Optional; it never is a requirement.
* ``"host"`` (``HostUploader``): CPU tensors go straight to ``glTexSubImage2D``; CUDA tensors are
  first copied into a reused pinned host buffer.

``make_uploader(preference, device)`` picks one for ``--interop auto|cuda|pycuda|host`` and returns
a note for the performance panel saying which backend runs and why a fallback happened. On CUDA it
self-tests the interop backend (upload known pixels into scratch textures, read them back), which
catches setups where registration "works" but the GL context lives on another GPU, or WSL.

Threading and synchronisation:

* Everything here runs on the UI thread, with its GL context current (registration, mapping and
  ``glTexSubImage2D`` all need it). ``make_uploader`` too.
* Uploads read the tensor on **torch's current stream** of the tensor's device. A frame made on the
  render worker's stream must be ordered before that: the worker records a ``torch.cuda.Event``
  after producing the frame and the UI passes it as ``Texture2D.upload(..., ready_event=e)``, which
  does ``torch.cuda.current_stream().wait_event(e)`` (a GPU-side wait; the CPU does not block).
* After the copy is queued, the tensor is marked used by the current stream (``record_stream``) so
  the caching allocator does not hand its memory to the producer before the copy has run.
* CUDA -> GL ordering comes from ``cudaGraphicsUnmapResources`` on the same stream: GL commands
  issued after it see the copied pixels. The host path synchronises the stream before handing the
  pinned buffer to GL (which copies client memory before ``glTexSubImage2D`` returns).

Importing this module never imports cuda-python or pycuda and never initialises CUDA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from OpenGL import GL

from app.textures import Texture2D, TextureFormat, Uploader, format_spec

InteropPreference = Literal["auto", "cuda", "pycuda", "host"]
INTEROP_CHOICES: tuple[str, ...] = ("auto", "cuda", "pycuda", "host")

# What to tell the user next to a CUDA error name, for the failures that have a usual cause.
_ERROR_HINTS = {
    "cudaErrorOperatingSystem": "WSL? CUDA-OpenGL interop is not supported there",
    "cudaErrorInvalidGraphicsContext": "the GL context is not current or not on an NVIDIA GPU",
    "cudaErrorNoDevice": "no CUDA device drives this GL context (display on another GPU?)",
    "cudaErrorInsufficientDriver": "driver older than this cuda-bindings' CUDA major version; "
                                   "with a CUDA 12 driver: pip install 'cuda-bindings<13'",
    "cudaErrorNotSupported": "the driver does not support this interop",
    "cudaErrorUnknown": "display on another GPU, or a remote / software GL context?",
}


class InteropError(RuntimeError):
    """A CUDA-OpenGL interop backend could not be set up or failed; the message says why."""


def _check_upload(texture: Texture2D, tensor: torch.Tensor) -> None:
    """Raise unless ``tensor`` fits ``texture`` exactly (shape, dtype, contiguity)."""
    if tuple(tensor.shape) != texture.shape:
        raise ValueError(f"tensor {list(tensor.shape)} does not match {texture} ({list(texture.shape)})")
    if tensor.dtype != texture.spec.dtype:
        raise TypeError(f"tensor dtype {tensor.dtype} does not match {texture.fmt} ({texture.spec.dtype})")
    if not tensor.is_contiguous():
        raise ValueError("uploads need contiguous tensors")


# ----------------------------------------------------------------------------------------------
# Host upload
# ----------------------------------------------------------------------------------------------


class HostUploader:
    """Host memory -> ``glTexSubImage2D``. CUDA tensors go through a reused pinned buffer."""

    name = "host"

    def __init__(self) -> None:
        self._pinned: torch.Tensor | None = None  # flat uint8 staging buffer, grown as needed

    def _staging(self, like: torch.Tensor) -> torch.Tensor:
        """A pinned CPU view with ``like``'s shape and dtype (reuses one buffer across frames)."""
        nbytes = like.numel() * like.element_size()
        if self._pinned is None or self._pinned.numel() < nbytes:
            self._pinned = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
        return self._pinned[:nbytes].view(like.dtype).view(like.shape)

    def upload(self, texture: Texture2D, tensor: torch.Tensor) -> None:
        _check_upload(texture, tensor)
        if tensor.is_cuda:
            host = self._staging(tensor)
            host.copy_(tensor, non_blocking=True)  # async DMA on the current stream...
            torch.cuda.current_stream(tensor.device).synchronize()  # ...which GL must not read before it lands
        elif tensor.device.type != "cpu":
            host = tensor.cpu()  # other accelerators (mps, xpu): a plain blocking copy
        else:
            host = tensor
        texture._sub_image_from_pointer(host.data_ptr())

    def forget(self, texture: Texture2D) -> None:
        pass  # nothing registered

    def close(self) -> None:
        self._pinned = None


# ----------------------------------------------------------------------------------------------
# cuda-python
# ----------------------------------------------------------------------------------------------


def import_cudart() -> Any:
    """cuda-python's runtime module, or InteropError saying how to get it.

    ``cuda.bindings.runtime`` since cuda-python 12.6.1 (the ``cuda-bindings`` package; torch's
    CUDA 13 wheels depend on it), ``cuda.cudart`` before (removed in 13).
    """
    try:
        from cuda.bindings import runtime as cudart
    except ImportError as new_error:
        try:
            from cuda import cudart  # type: ignore[no-redef]  # cuda-python < 12.6.1
        except ImportError:
            raise InteropError(f"cuda-python is not installed ({new_error}); pip install cuda-bindings") from None
    return cudart


def cuda_error_name(cudart: Any, err: Any) -> str:
    """'cudaErrorOperatingSystem' for an error code of cuda-python's runtime."""
    name = getattr(err, "name", None)
    if name:
        return str(name)
    try:
        status, raw = cudart.cudaGetErrorName(err)
        return raw.decode() if isinstance(raw, bytes) else str(raw)
    except Exception:
        return f"cudaError {int(err)}"


def _describe_cuda_error(cudart: Any, call: str, err: Any) -> str:
    name = cuda_error_name(cudart, err)
    hint = _ERROR_HINTS.get(name)
    return f"{call}: {name}" + (f" ({hint})" if hint else "")


def _cuda_call(cudart: Any, call: str, result: Any) -> Any:
    """Check one cuda-python call's result tuple ``(err, *values)``; return the values.

    InteropError names the call and the error ("cudaGraphicsGLRegisterImage: cudaErrorUnknown").
    Returns None, the single value, or a tuple of values.
    """
    if isinstance(result, tuple):
        err, values = result[0], result[1:]
    else:
        err, values = result, ()
    if err != cudart.cudaError_t.cudaSuccess:
        raise InteropError(_describe_cuda_error(cudart, call, err))
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _cuda_device(device: torch.device | str) -> torch.device:
    """``device`` with its index filled in (torch's current device for a bare "cuda")."""
    device = torch.device(device)
    if device.type != "cuda":
        raise InteropError(f"CUDA interop needs a CUDA device, got {device}")
    if not torch.cuda.is_available():
        raise InteropError("torch has no usable CUDA device")
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


@dataclass
class _Registration:
    generation: int
    resource: Any


class CudaPythonUploader:
    """CUDA tensor -> GL texture with no host round trip, via cuda-python's runtime API.

    Per texture allocation: ``cudaGraphicsGLRegisterImage(..., WriteDiscard)`` (cached under the
    texture id and allocation generation). Per frame, on torch's current stream: map -> get the
    mapped CUDA array -> ``cudaMemcpy2DToArrayAsync`` device-to-device -> unmap. Every call's error
    code is checked; failures raise InteropError naming the call and the cudaError.
    """

    name = "cuda-python"
    _interop_device_type = "cuda"  # tensors on other devices take the host path (tests fake "cpu")

    def __init__(self, device: torch.device | str, cudart: Any = None) -> None:
        """``cudart``: the runtime module to call (default: cuda-python's; tests pass a fake)."""
        self.device = _cuda_device(device)
        self._rt = cudart if cudart is not None else import_cudart()
        self._registrations: dict[int, _Registration] = {}
        self._host = HostUploader()  # for CPU tensors
        self._make_current()

    def _make_current(self) -> None:
        """Make the device's primary context current on this thread for torch and for cuda-python.

        Both runtimes use the device's primary context, so torch's pointers and streams are valid in
        the cuda-python calls. Cheap; repeated per upload because cuda-python keeps per-thread state.
        """
        torch.cuda.set_device(self.device)
        _cuda_call(self._rt, "cudaSetDevice", self._rt.cudaSetDevice(self.device.index))

    def _resource(self, texture: Texture2D) -> Any:
        reg = self._registrations.get(texture.id)
        if reg is not None and reg.generation == texture.generation:
            return reg.resource
        if reg is not None:  # stale: the texture was reallocated without a forget()
            self._unregister(texture.id)
        rt = self._rt
        flags = rt.cudaGraphicsRegisterFlags.cudaGraphicsRegisterFlagsWriteDiscard  # we overwrite every pixel
        resource = _cuda_call(rt, "cudaGraphicsGLRegisterImage",
                              rt.cudaGraphicsGLRegisterImage(texture.id, int(GL.GL_TEXTURE_2D), flags))
        self._registrations[texture.id] = _Registration(texture.generation, resource)
        return resource

    def upload(self, texture: Texture2D, tensor: torch.Tensor) -> None:
        _check_upload(texture, tensor)
        if tensor.device.type != self._interop_device_type:  # e.g. a CPU overlay: nothing to map
            self._host.upload(texture, tensor)
            return
        if tensor.device != self.device:
            raise ValueError(f"{self.name} uploader is for {self.device}, the tensor is on {tensor.device}")
        rt = self._rt
        self._make_current()
        resource = self._resource(texture)
        stream = self._stream()
        handle = stream.cuda_stream
        _cuda_call(rt, "cudaGraphicsMapResources", rt.cudaGraphicsMapResources(1, resource, handle))
        try:
            array = _cuda_call(rt, "cudaGraphicsSubResourceGetMappedArray",
                               rt.cudaGraphicsSubResourceGetMappedArray(resource, 0, 0))
            row_bytes = texture.width * texture.spec.pixel_bytes  # tight rows: pitch == width in bytes
            _cuda_call(rt, "cudaMemcpy2DToArrayAsync", rt.cudaMemcpy2DToArrayAsync(
                array, 0, 0, tensor.data_ptr(), row_bytes, row_bytes, texture.height,
                rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice, handle))
        finally:
            # Unmap even when the copy failed, or GL could never use the texture again; a
            # failing unmap after a failed copy must not hide the copy's error.
            unmapped = rt.cudaGraphicsUnmapResources(1, resource, handle)
        _cuda_call(rt, "cudaGraphicsUnmapResources", unmapped)
        self._keep_until_done(tensor, stream)

    def _stream(self) -> torch.cuda.Stream:
        """Torch's current stream on the device: the copy is queued there (``.cuda_stream`` handle)."""
        return torch.cuda.current_stream(self.device)

    @staticmethod
    def _keep_until_done(tensor: torch.Tensor, stream: torch.cuda.Stream) -> None:
        # The copy is still queued: without this, dropping the last reference could let the caching
        # allocator hand the memory to the producer's stream before the copy has read it.
        tensor.record_stream(stream)

    def _unregister(self, texture_id: int) -> None:
        reg = self._registrations.pop(texture_id, None)
        if reg is not None:
            result = self._rt.cudaGraphicsUnregisterResource(reg.resource)
            _cuda_call(self._rt, "cudaGraphicsUnregisterResource", result)

    def forget(self, texture: Texture2D) -> None:
        if texture.id in self._registrations:
            self._make_current()
            self._unregister(texture.id)

    def close(self) -> None:
        if self._registrations:
            self._make_current()
        for texture_id in list(self._registrations):
            try:
                self._unregister(texture_id)
            except InteropError:
                pass  # shutting down: a failed unregister leaks a handle at worst

    def gl_devices(self) -> list[int] | str:
        """CUDA devices that drive the current GL context (diagnostics), or the error text."""
        rt = self._rt
        try:
            result = rt.cudaGLGetDevices(8, rt.cudaGLDeviceList.cudaGLDeviceListAll)
            count, devices = _cuda_call(rt, "cudaGLGetDevices", result)
            return list(devices)[: int(count)]
        except Exception as e:  # diagnostics only
            return str(e)


# ----------------------------------------------------------------------------------------------
# pycuda (optional)
# ----------------------------------------------------------------------------------------------


class PycudaUploader:
    """CUDA tensor -> GL texture through ``pycuda.gl`` (RegisteredImage, map, Memcpy2D).

    pycuda cannot queue work on torch's streams, so each upload first waits for torch's current
    stream on the CPU, then copies synchronously; slower than ``CudaPythonUploader`` but still
    without a host round trip. Uses the device's primary context (the one torch uses), pushed
    around each call so pycuda's context stack never leaks into torch.
    """

    name = "pycuda"

    def __init__(self, device: torch.device | str) -> None:
        self.device = _cuda_device(device)
        try:
            import pycuda.driver as drv
            import pycuda.gl as cuda_gl
        except ImportError as e:  # also raised by pycuda builds without GL support
            raise InteropError(f"pycuda (with GL support) is not available: {e}") from None
        self._drv, self._gl = drv, cuda_gl
        torch.cuda.set_device(self.device)
        torch.cuda.current_stream(self.device)  # initialise torch's context first: pycuda shares it
        try:
            drv.init()
            self._context = drv.Device(self.device.index).retain_primary_context()
        except drv.Error as e:
            raise InteropError(f"pycuda could not use {self.device}: {e}") from None
        self._registrations: dict[int, _Registration] = {}
        self._host = HostUploader()  # for CPU tensors

    def _in_context(self, fn: Any) -> Any:
        self._context.push()
        try:
            return fn()
        except self._drv.Error as e:
            raise InteropError(f"pycuda: {e}") from None
        finally:
            self._drv.Context.pop()

    def upload(self, texture: Texture2D, tensor: torch.Tensor) -> None:
        _check_upload(texture, tensor)
        if tensor.device.type != "cuda":  # e.g. a CPU overlay: nothing to map
            self._host.upload(texture, tensor)
            return
        if tensor.device != self.device:
            raise ValueError(f"{self.name} uploader is for {self.device}, the tensor is on {tensor.device}")
        torch.cuda.current_stream(self.device).synchronize()  # pycuda's copy is not on torch's stream
        drv, cuda_gl = self._drv, self._gl

        def copy() -> None:
            reg = self._registrations.get(texture.id)
            if reg is None or reg.generation != texture.generation:
                if reg is not None:
                    reg.resource.unregister()
                flags = cuda_gl.graphics_map_flags.WRITE_DISCARD
                image = cuda_gl.RegisteredImage(texture.id, int(GL.GL_TEXTURE_2D), flags)
                reg = _Registration(texture.generation, image)
                self._registrations[texture.id] = reg
            mapping = reg.resource.map()
            try:
                cpy = drv.Memcpy2D()
                cpy.set_src_device(tensor.data_ptr())
                cpy.set_dst_array(mapping.array(0, 0))
                cpy.width_in_bytes = cpy.src_pitch = texture.width * texture.spec.pixel_bytes
                cpy.height = texture.height
                cpy(aligned=False)  # synchronous
            finally:
                mapping.unmap()

        self._in_context(copy)

    def forget(self, texture: Texture2D) -> None:
        reg = self._registrations.pop(texture.id, None)
        if reg is not None:
            self._in_context(reg.resource.unregister)

    def close(self) -> None:
        for texture_id in list(self._registrations):
            try:
                reg = self._registrations.pop(texture_id)
                self._in_context(reg.resource.unregister)
            except InteropError:
                pass
        self._context.detach()


# ----------------------------------------------------------------------------------------------
# Choosing one
# ----------------------------------------------------------------------------------------------

_SELF_TEST_SIZE = (5, 3)  # W, H: odd and non-square, so pitch or transposition mistakes show


def _self_test_pattern(fmt: TextureFormat, device: torch.device) -> torch.Tensor:
    """A small [H, W, C] tensor whose every element differs (exactly representable)."""
    spec = format_spec(fmt)
    width, height = _SELF_TEST_SIZE
    n = height * width * spec.channels
    values = torch.arange(n, dtype=torch.float32)
    values = (values * 7 % 251) if spec.dtype == torch.uint8 else values * 0.25 - 3.0
    return values.to(spec.dtype).reshape(height, width, spec.channels).to(device)


def self_test(uploader: Uploader, device: torch.device) -> None:
    """Upload known pixels of every format into scratch textures and read them back exactly.

    Raises InteropError on any error or mismatch. Needs the GL context current.
    """
    for fmt in ("rgba8", "r32f", "rgba32f"):
        expected = _self_test_pattern(fmt, device)
        texture = Texture2D(fmt, "nearest")
        try:
            texture.upload(expected, uploader)
            got = torch.from_numpy(texture.read_back())
        except InteropError:
            raise
        except Exception as e:
            raise InteropError(f"self-test upload of {fmt} failed: {type(e).__name__}: {e}") from e
        finally:
            texture.delete()
        if not torch.equal(got, expected.cpu()):
            raise InteropError(f"self-test read back wrong {fmt} pixels")


def _make_interop(kind: str, device: torch.device) -> Uploader:
    uploader: Uploader = CudaPythonUploader(device) if kind == "cuda" else PycudaUploader(device)
    try:
        self_test(uploader, device)
    except Exception as e:
        reason = str(e) if isinstance(e, InteropError) else f"{type(e).__name__}: {e}"
        if isinstance(uploader, CudaPythonUploader):
            reason += f" (CUDA devices of the GL context: {uploader.gl_devices()}, render device: {device})"
        try:
            uploader.close()
        except Exception:
            pass
        raise InteropError(reason) from e
    return uploader


_LABELS = {"cuda": "cuda-python interop", "pycuda": "pycuda interop"}


def make_uploader(preference: InteropPreference | str, device: torch.device | str) -> tuple[Uploader, str]:
    """The uploader for ``--interop preference`` and frames on ``device``, and a note for the UI.

    * "host": ``HostUploader``.
    * "auto": on a CUDA device try cuda-python, then pycuda, then fall back to the host upload; the
      note lists why each interop backend was passed over. On other devices: host.
    * "cuda" / "pycuda": that backend, or InteropError with the reason (no fallback: the user asked).

    Interop backends are self-tested before they are returned (see ``self_test``). Must be called
    on the UI thread with its GL context current. Notes look like "cuda-python interop" or
    "host upload: no CUDA device (render device cpu)" or "host upload: cuda-python interop failed:
    cudaGraphicsGLRegisterImage: cudaErrorOperatingSystem (WSL? ...); pycuda interop failed: ...".
    """
    if preference not in INTEROP_CHOICES:
        raise ValueError(f"unknown interop preference {preference!r}; expected one of {INTEROP_CHOICES}")
    device = torch.device(device)
    if preference == "host":
        return HostUploader(), "host upload (--interop host)"
    if device.type != "cuda":
        if preference == "auto":
            return HostUploader(), f"host upload: no CUDA device (render device {device})"
        raise InteropError(f"--interop {preference} needs a CUDA render device; the render device is {device}")

    kinds = ["cuda", "pycuda"] if preference == "auto" else [preference]
    failures: list[str] = []
    for kind in kinds:
        try:
            uploader = _make_interop(kind, device)
            return uploader, _LABELS[kind]
        except Exception as e:  # any failure of an optional fast path means: try the next one
            reason = str(e) if isinstance(e, InteropError) else f"{type(e).__name__}: {e}"
            failures.append(f"{_LABELS[kind]} failed: {reason}")
    if preference != "auto":
        raise InteropError(failures[0])
    return HostUploader(), "host upload: " + "; ".join(failures)
