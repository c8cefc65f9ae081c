"""GL textures and frame uploaders (app.textures, app.interop), in a hidden GLFW window.

Needs a display (the Makefile runs tests under Xvfb with Mesa); without one, or without a 3.3
core context, every test here is skipped with the reason. The CUDA tests run only where torch sees
a GPU; elsewhere the cuda-python call sequence is checked against a fake runtime that performs the
"device" copies with GL from host memory.
"""

from __future__ import annotations

import ctypes
import enum
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from app import interop
from app.interop import CudaPythonUploader, HostUploader, InteropError, make_uploader, self_test
from app.textures import FORMATS, Texture2D, tensor_for_texture

FORMAT_NAMES = ("rgba8", "r32f", "rgba32f")


@pytest.fixture(scope="module")
def gl_context():
    """A current GL 3.3 core context of a hidden 16x16 window (skips the module without one)."""
    glfw = pytest.importorskip("glfw")
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        pytest.skip("no display (run under xvfb-run, as `make test` does)")
    previous = glfw.ERROR_REPORTING
    glfw.ERROR_REPORTING = "ignore"  # failures show up as False / None below
    try:
        if not glfw.init():
            pytest.skip("glfw.init() failed (no usable display)")
        glfw.default_window_hints()
        glfw.window_hint(glfw.VISIBLE, glfw.FALSE)
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, glfw.TRUE)
        window = glfw.create_window(16, 16, "test_interop", None, None)
        if not window:
            pytest.skip("could not create a hidden window with an OpenGL 3.3 core context")
    finally:
        glfw.ERROR_REPORTING = previous
    glfw.make_context_current(window)
    yield window
    glfw.make_context_current(None)
    glfw.destroy_window(window)  # no glfw.terminate(): other modules may hold windows of their own


def random_frame(fmt: str, height: int, width: int, device: torch.device | str = "cpu",
                 seed: int = 0) -> torch.Tensor:
    spec = FORMATS[fmt]
    g = torch.Generator().manual_seed(seed)
    if spec.dtype == torch.uint8:
        t = torch.randint(0, 256, (height, width, spec.channels), generator=g, dtype=torch.uint8)
    else:
        t = torch.randn((height, width, spec.channels), generator=g) * 100  # beyond [0, 1]: float storage
    return t.to(device)


class SpyUploader(HostUploader):
    """Host uploader that records forget() calls."""

    def __init__(self) -> None:
        super().__init__()
        self.forgotten: list[int] = []

    def forget(self, texture: Texture2D) -> None:
        self.forgotten.append(texture.id)


# ----------------------------------------------------------------------------------------------
# Host upload
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@pytest.mark.parametrize("height,width", [(5, 7), (1, 1), (2, 13), (64, 48)])
def test_host_round_trip(gl_context, fmt, height, width):
    frame = random_frame(fmt, height, width)
    texture = Texture2D(fmt)
    try:
        texture.upload(frame, HostUploader())
        assert (texture.width, texture.height) == (width, height)
        got = texture.read_back()
        assert got.shape == (height, width, FORMATS[fmt].channels) and got.dtype == FORMATS[fmt].np_dtype
        np.testing.assert_array_equal(got, frame.numpy())  # row 0 = image top row, bit-exact
    finally:
        texture.delete()


def test_reallocation_on_size_change(gl_context):
    uploader = SpyUploader()
    texture = Texture2D("rgba8")
    try:
        texture.upload(random_frame("rgba8", 3, 4, seed=1), uploader)
        first_generation = texture.generation
        assert uploader.forgotten == []
        assert texture.ensure_size(4, 3) is False  # same size: storage kept
        frame = random_frame("rgba8", 6, 9, seed=2)
        texture.upload(frame, uploader)
        assert texture.generation != first_generation
        assert uploader.forgotten == [texture.id]  # told before the storage changed
        np.testing.assert_array_equal(texture.read_back(), frame.numpy())
        assert texture.ensure_size(2, 2) is True
        assert texture.read_back().shape == (2, 2, 4)
    finally:
        texture.delete()


def test_non_contiguous_input(gl_context):
    base = random_frame("rgba32f", 7, 5, seed=3)
    transposed = base.permute(1, 0, 2)  # [5, 7, 4] view, not contiguous
    assert not transposed.is_contiguous()
    texture = Texture2D("rgba32f")
    try:
        texture.upload(transposed, HostUploader())
        np.testing.assert_array_equal(texture.read_back(), transposed.contiguous().numpy())
        strided = random_frame("r32f", 8, 10, seed=4)[::2, 1::3]  # [4, 3, 1] with gaps
        r = Texture2D("r32f")
        try:
            r.upload(strided, HostUploader())
            np.testing.assert_array_equal(r.read_back(), strided.numpy())
        finally:
            r.delete()
    finally:
        texture.delete()


def test_upload_rejects_wrong_layout_and_dtype(gl_context):
    texture = Texture2D("rgba8")
    try:
        with pytest.raises(ValueError, match=r"\[H, W, 4\]"):
            texture.upload(torch.zeros(4, 5, 3, dtype=torch.uint8), HostUploader())
        with pytest.raises(TypeError, match="uint8"):
            texture.upload(torch.zeros(4, 5, 4), HostUploader())
        assert texture.width == 0  # nothing allocated by a rejected frame
    finally:
        texture.delete()


def test_pixel_store_state_restored_and_filters(gl_context):
    from OpenGL import GL

    GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 4)
    GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 4)
    texture = Texture2D("rgba8", filter="nearest")
    try:
        texture.upload(random_frame("rgba8", 3, 3), HostUploader())
        texture.read_back()
        assert int(GL.glGetIntegerv(GL.GL_UNPACK_ALIGNMENT)) == 4
        assert int(GL.glGetIntegerv(GL.GL_PACK_ALIGNMENT)) == 4
        texture.bind(0)
        assert int(GL.glGetTexParameteriv(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAG_FILTER)) == GL.GL_NEAREST
        texture.set_filter("linear")
        assert int(GL.glGetTexParameteriv(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER)) == GL.GL_LINEAR
        with pytest.raises(ValueError):
            texture.set_filter("cubic")  # type: ignore[arg-type]
        assert GL.glGetError() == GL.GL_NO_ERROR
    finally:
        texture.delete()


def test_delete_forgets_and_is_idempotent(gl_context):
    uploader = SpyUploader()
    texture = Texture2D("r32f")
    texture.upload(random_frame("r32f", 2, 3), uploader)
    texture_id = texture.id
    texture.delete()
    texture.delete()
    assert uploader.forgotten == [texture_id] and texture.id == 0
    with pytest.raises(RuntimeError, match="deleted"):
        texture.ensure_size(2, 2)


# ----------------------------------------------------------------------------------------------
# tensor_for_texture
# ----------------------------------------------------------------------------------------------


def test_tensor_for_texture_rgba8_from_chw_and_hwc():
    chw = torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8)
    out = tensor_for_texture(chw, "rgba8")
    assert out.shape == (5, 7, 4) and out.dtype == torch.uint8 and out.is_contiguous()
    assert torch.equal(out[..., :3], chw.permute(1, 2, 0)) and bool((out[..., 3] == 255).all())
    assert torch.equal(tensor_for_texture(chw.permute(1, 2, 0), "rgba8"), out)  # [H, W, 3] too
    assert torch.equal(tensor_for_texture(chw[None], "rgba8"), out)  # batch of one
    rgba = torch.randint(0, 256, (4, 5, 7), dtype=torch.uint8)
    assert torch.equal(tensor_for_texture(rgba, "rgba8"), rgba.permute(1, 2, 0))
    with pytest.raises(TypeError, match="uint8"):
        tensor_for_texture(chw.float(), "rgba8")


def test_tensor_for_texture_float_formats():
    chw = torch.rand(3, 4, 6, dtype=torch.float64)
    out = tensor_for_texture(chw, "rgba32f")
    assert out.shape == (4, 6, 4) and out.dtype == torch.float32
    assert torch.equal(out[..., :3], chw.permute(1, 2, 0).float()) and bool((out[..., 3] == 1.0).all())

    depth = torch.rand(1, 4, 6)
    d = tensor_for_texture(depth, "r32f")
    assert d.shape == (4, 6, 1) and torch.equal(d[..., 0], depth[0])
    assert torch.equal(tensor_for_texture(depth[0], "r32f"), d)  # [H, W]
    assert torch.equal(tensor_for_texture(depth.permute(1, 2, 0), "r32f"), d)  # [H, W, 1]
    grey = tensor_for_texture(depth, "rgba32f")  # one channel to RGBA: grey, opaque
    assert torch.equal(grey[..., 0], depth[0]) and torch.equal(grey[..., 2], depth[0])
    assert bool((grey[..., 3] == 1).all())
    with pytest.raises(ValueError, match="one channel"):
        tensor_for_texture(chw, "r32f")
    with pytest.raises(ValueError, match="channels"):
        tensor_for_texture(torch.zeros(2, 4, 5), "rgba32f")


def test_tensor_for_texture_ambiguous_layout():
    x = torch.arange(3 * 4 * 3, dtype=torch.float32).reshape(3, 4, 3)
    assert tensor_for_texture(x, "rgba32f").shape == (4, 3, 4)  # [C, H, W] wins ties
    assert tensor_for_texture(torch.zeros(4, 4, 3), "rgba32f").shape == (4, 4, 4)  # smaller end: HWC
    assert tensor_for_texture(torch.zeros(1, 4, 3), "r32f").shape == (4, 3, 1)  # smaller end: CHW
    assert tensor_for_texture(torch.zeros(4, 4, 3), "rgba32f", layout="chw").shape == (4, 3, 4)
    hwc = tensor_for_texture(x, "rgba32f", layout="hwc")
    assert hwc.shape == (3, 4, 4) and torch.equal(hwc[..., :3], x)


def test_tensor_for_texture_result_uploads(gl_context):
    chw = torch.randint(0, 256, (3, 3, 5), dtype=torch.uint8)
    texture = Texture2D("rgba8")
    try:
        texture.upload(tensor_for_texture(chw, "rgba8"), HostUploader())
        got = texture.read_back()
        np.testing.assert_array_equal(got[..., :3], chw.permute(1, 2, 0).numpy())
        assert (got[..., 3] == 255).all()
    finally:
        texture.delete()


# ----------------------------------------------------------------------------------------------
# make_uploader
# ----------------------------------------------------------------------------------------------


def test_make_uploader_cpu(gl_context):
    uploader, note = make_uploader("auto", torch.device("cpu"))
    assert uploader.name == "host" and note == "host upload: no CUDA device (render device cpu)"
    uploader, note = make_uploader("host", "cpu")
    assert uploader.name == "host" and "host" in note
    for backend in ("cuda", "pycuda"):
        with pytest.raises(InteropError, match=f"--interop {backend} needs a CUDA render device.*cpu"):
            make_uploader(backend, "cpu")
    with pytest.raises(ValueError, match="unknown interop"):
        make_uploader("vulkan", "cpu")


def test_make_uploader_auto_fallback_note(gl_context, monkeypatch):
    """On CUDA, failing interop backends fall back to host with every reason in the note."""
    reasons = {"cuda": "cudaGraphicsGLRegisterImage: cudaErrorOperatingSystem (WSL? ...)",
               "pycuda": "pycuda (with GL support) is not available: No module named 'pycuda'"}

    def failing(kind, device):
        raise InteropError(reasons[kind])

    monkeypatch.setattr(interop, "_make_interop", failing)
    uploader, note = make_uploader("auto", torch.device("cuda", 0))
    assert uploader.name == "host"
    assert note == ("host upload: cuda-python interop failed: " + reasons["cuda"]
                    + "; pycuda interop failed: " + reasons["pycuda"])
    with pytest.raises(InteropError, match="cudaErrorOperatingSystem"):
        make_uploader("cuda", torch.device("cuda", 0))  # asked for explicitly: no silent fallback


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the reasons given when CUDA is missing")
def test_make_uploader_cuda_without_cuda(gl_context):
    uploader, note = make_uploader("auto", "cuda")
    assert uploader.name == "host"
    assert note.startswith("host upload: cuda-python interop failed: torch has no usable CUDA device;")
    with pytest.raises(InteropError, match="no usable CUDA device"):
        make_uploader("cuda", "cuda:0")


def test_module_import_is_lazy():
    import subprocess
    import sys

    # torch itself may import cuda.bindings; what matters is that our modules add nothing.
    code = ("import sys, torch; before = set(sys.modules); import app.interop, app.textures; "
            "new = [m for m in set(sys.modules) - before if m.split('.')[0] in ('cuda', 'pycuda')]; "
            "assert not new, new; assert not torch.cuda.is_initialized()")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(__file__)))


def test_self_test_passes_for_host(gl_context):
    self_test(HostUploader(), torch.device("cpu"))


# ----------------------------------------------------------------------------------------------
# cuda-python call sequence, against a fake runtime (runs without a GPU)
# ----------------------------------------------------------------------------------------------


class FakeCudart:
    """Stands in for ``cuda.bindings.runtime``: same call shapes and (err, *values) results.

    "Device" pointers are host pointers of CPU tensors; the 2-D copy into a mapped array is done
    with glTexSubImage2D into the registered texture, honouring pitch / width / height, so a wrong
    argument shows up as wrong pixels. ``fail`` = {call name: error name} injects errors.
    """

    class cudaError_t(enum.IntEnum):
        cudaSuccess = 0
        cudaErrorInvalidValue = 1
        cudaErrorUnknown = 999
        cudaErrorOperatingSystem = 304

    cudaGraphicsRegisterFlags = SimpleNamespace(cudaGraphicsRegisterFlagsWriteDiscard=2)
    cudaMemcpyKind = SimpleNamespace(cudaMemcpyDeviceToDevice=3)
    cudaGLDeviceList = SimpleNamespace(cudaGLDeviceListAll=1)

    def __init__(self, textures: dict[int, Texture2D], fail: dict[str, str] | None = None, skew: int = 0):
        self.textures, self.fail, self.skew = textures, fail or {}, skew
        self.calls: list[tuple] = []
        self.registered: dict[int, int] = {}  # resource handle -> texture id
        self.mapped: set[int] = set()
        self._next = 100

    def _result(self, name: str, *values):
        self.calls.append((name,) + values)
        err = self.cudaError_t[self.fail[name]] if name in self.fail else self.cudaError_t.cudaSuccess
        return (err, *(None for _ in values)) if err else (err, *values)

    def cudaSetDevice(self, index):
        return self._result("cudaSetDevice")

    def cudaGraphicsGLRegisterImage(self, image, target, flags):
        from OpenGL import GL

        assert target == GL.GL_TEXTURE_2D and flags == 2
        self._next += 1
        result = self._result("cudaGraphicsGLRegisterImage", self._next)
        if not result[0]:
            self.registered[self._next] = image
        return result

    def cudaGraphicsUnregisterResource(self, resource):
        assert resource not in self.mapped
        self.registered.pop(resource)
        return self._result("cudaGraphicsUnregisterResource")

    def cudaGraphicsMapResources(self, count, resource, stream):
        assert count == 1 and resource in self.registered and stream == 777
        self.mapped.add(resource)
        return self._result("cudaGraphicsMapResources")

    def cudaGraphicsUnmapResources(self, count, resource, stream):
        assert count == 1 and resource in self.mapped and stream == 777
        self.mapped.discard(resource)
        return self._result("cudaGraphicsUnmapResources")

    def cudaGraphicsSubResourceGetMappedArray(self, resource, index, level):
        assert resource in self.mapped and (index, level) == (0, 0)
        return self._result("cudaGraphicsSubResourceGetMappedArray", ("array", resource))

    def cudaMemcpy2DToArrayAsync(self, dst, w_offset, h_offset, src, spitch, width, height, kind, stream):
        from OpenGL import GL

        assert kind == 3 and stream == 777 and dst[1] in self.mapped
        result = self._result("cudaMemcpy2DToArrayAsync")
        if result[0]:
            return result
        texture = self.textures[self.registered[dst[1]]]
        pixel = texture.spec.pixel_bytes
        assert width % pixel == 0 and w_offset % pixel == 0
        spitch += self.skew  # a broken "driver" for the self-test
        GL.glBindTexture(GL.GL_TEXTURE_2D, texture.id)
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
        GL.glPixelStorei(GL.GL_UNPACK_ROW_LENGTH, spitch // pixel)
        GL.glTexSubImage2D(GL.GL_TEXTURE_2D, 0, w_offset // pixel, h_offset, width // pixel, height,
                           texture.spec.gl_format, texture.spec.gl_type, ctypes.c_void_p(src))
        GL.glPixelStorei(GL.GL_UNPACK_ROW_LENGTH, 0)
        return result

    def cudaGLGetDevices(self, count, which):
        return self._result("cudaGLGetDevices", 1, [0])


class FakeStreamUploader(CudaPythonUploader):
    """CudaPythonUploader on CPU tensors: no torch.cuda calls, a fixed stream handle."""

    _interop_device_type = "cpu"  # CPU tensors play device memory and take the interop path

    def __init__(self, cudart: FakeCudart):
        self.device = torch.device("cpu")
        self._rt = cudart
        self._registrations = {}
        self._host = None

    def _make_current(self):
        pass

    def _stream(self):
        return SimpleNamespace(cuda_stream=777)

    @staticmethod
    def _keep_until_done(tensor, stream):
        pass


class TrackedTexture(Texture2D):
    registry: dict[int, Texture2D] = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        TrackedTexture.registry[self.id] = self


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_cuda_python_call_sequence(gl_context, fmt):
    fake = FakeCudart(TrackedTexture.registry)
    uploader = FakeStreamUploader(fake)
    texture = TrackedTexture(fmt)
    try:
        frame = random_frame(fmt, 5, 7, seed=5)
        texture.upload(frame, uploader)
        np.testing.assert_array_equal(texture.read_back(), frame.numpy())
        names = [c[0] for c in fake.calls]
        assert names == ["cudaGraphicsGLRegisterImage", "cudaGraphicsMapResources",
                         "cudaGraphicsSubResourceGetMappedArray", "cudaMemcpy2DToArrayAsync",
                         "cudaGraphicsUnmapResources"]
        fake.calls.clear()
        texture.upload(random_frame(fmt, 5, 7, seed=6), uploader)  # same size: registration reused
        assert "cudaGraphicsGLRegisterImage" not in [c[0] for c in fake.calls]
        fake.calls.clear()
        frame = random_frame(fmt, 3, 11, seed=7)
        texture.upload(frame, uploader)  # new size: unregistered before reallocation, registered anew
        names = [c[0] for c in fake.calls]
        assert names[:2] == ["cudaGraphicsUnregisterResource", "cudaGraphicsGLRegisterImage"]
        np.testing.assert_array_equal(texture.read_back(), frame.numpy())
        texture.delete()
        assert fake.registered == {} and fake.mapped == set()
    finally:
        texture.delete()
        uploader.close()


def test_cuda_python_errors_name_the_call_and_unmap(gl_context):
    fake = FakeCudart(TrackedTexture.registry, fail={"cudaMemcpy2DToArrayAsync": "cudaErrorInvalidValue"})
    uploader = FakeStreamUploader(fake)
    texture = TrackedTexture("rgba8")
    try:
        with pytest.raises(InteropError, match=r"^cudaMemcpy2DToArrayAsync: cudaErrorInvalidValue$"):
            texture.upload(random_frame("rgba8", 2, 2), uploader)
        assert fake.mapped == set()  # unmapped despite the failed copy
        fake.fail = {"cudaGraphicsGLRegisterImage": "cudaErrorOperatingSystem"}
        other = TrackedTexture("r32f")
        try:
            with pytest.raises(InteropError, match=r"cudaGraphicsGLRegisterImage: cudaErrorOperatingSystem \(WSL"):
                other.upload(random_frame("r32f", 2, 2), uploader)
        finally:
            other.delete()
    finally:
        texture.delete()
        uploader.close()


def test_self_test_catches_wrong_pixels(gl_context, monkeypatch):
    monkeypatch.setattr(interop, "Texture2D", TrackedTexture)  # the fake must see self_test's scratch textures
    self_test(FakeStreamUploader(FakeCudart(TrackedTexture.registry)), torch.device("cpu"))  # honest fake passes
    broken = FakeStreamUploader(FakeCudart(TrackedTexture.registry, skew=-4))  # rows read at a wrong pitch
    with pytest.raises(InteropError, match="self-test read back wrong rgba8 pixels"):
        self_test(broken, torch.device("cpu"))


# ----------------------------------------------------------------------------------------------
# Real CUDA (skipped without a GPU)
# ----------------------------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _cuda_python_or_skip(device: torch.device) -> CudaPythonUploader:
    try:
        interop.import_cudart()
    except InteropError as e:
        pytest.skip(str(e))
    return CudaPythonUploader(device)


@needs_cuda
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_cuda_python_round_trip(gl_context, fmt):
    device = torch.device("cuda", torch.cuda.current_device())
    uploader = _cuda_python_or_skip(device)
    texture = Texture2D(fmt)
    try:
        for height, width, seed in [(5, 7, 0), (64, 33, 1)]:
            frame = random_frame(fmt, height, width, device, seed)
            texture.upload(frame, uploader)
            np.testing.assert_array_equal(texture.read_back(), frame.cpu().numpy())
        cpu_frame = random_frame(fmt, 64, 33, "cpu", seed=2)  # CPU tensors take the host path
        texture.upload(cpu_frame, uploader)
        np.testing.assert_array_equal(texture.read_back(), cpu_frame.numpy())
        frame = random_frame(fmt, 64, 33, device, seed=3)  # and interop still works afterwards
        texture.upload(frame, uploader)
        np.testing.assert_array_equal(texture.read_back(), frame.cpu().numpy())
    finally:
        texture.delete()
        uploader.close()


@needs_cuda
def test_cuda_frame_from_another_stream(gl_context):
    """A frame produced on a side stream, handed over with an event (the render worker's protocol)."""
    device = torch.device("cuda", torch.cuda.current_device())
    uploader = _cuda_python_or_skip(device)
    texture = Texture2D("rgba32f")
    try:
        side = torch.cuda.Stream(device)
        with torch.cuda.stream(side):
            frame = torch.randn(256, 256, 4, device=device).mul_(3).add_(1)
            ready = torch.cuda.Event()
            ready.record(side)
        texture.upload(frame, uploader, ready_event=ready)
        np.testing.assert_array_equal(texture.read_back(), frame.cpu().numpy())
    finally:
        texture.delete()
        uploader.close()


@needs_cuda
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_host_uploader_with_cuda_tensor(gl_context, fmt):
    frame = random_frame(fmt, 9, 4, "cuda", seed=8)
    texture = Texture2D(fmt)
    try:
        texture.upload(frame, HostUploader())
        np.testing.assert_array_equal(texture.read_back(), frame.cpu().numpy())
    finally:
        texture.delete()


@needs_cuda
def test_make_uploader_auto_on_cuda_picks_cuda_python(gl_context):
    _cuda_python_or_skip(torch.device("cuda", torch.cuda.current_device())).close()
    uploader, note = make_uploader("auto", torch.device("cuda"))
    try:
        assert (uploader.name, note) == ("cuda-python", "cuda-python interop")
    finally:
        uploader.close()
