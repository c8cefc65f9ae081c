"""The viewport: GL textures, shaders and mesh buffers that draw a ``DisplayFrame``.

Needs a current OpenGL 3.3 core context. ``set_frame`` uploads a frame's tensors (through the
chosen uploader: CUDA-GL interop or host upload) and mesh; ``draw`` shows it in a rectangle of the
window; ``render_image`` draws the same picture into an off-screen framebuffer at a chosen size and
reads it back (image screenshots are exactly what the viewport shows, at native resolution).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import OpenGL.GL as gl
import torch

from app.textures import Texture2D
from ops.camera import opengl_matrices
from renderers.colormaps import LIGHT_DIRECTION, colormap_lut
from renderers.display_frame import DisplayFrame, depth_limits
from renderers.render_args import DisplayArgs

SHADER_DIR = Path(__file__).resolve().parent.parent / "shaders"
BACKGROUND = (0.11, 0.11, 0.13)


class ShaderError(RuntimeError):
    """A GLSL program failed to compile or link; the message carries the driver's log."""


def compile_program(vertex_file: str, fragment_file: str) -> int:
    """Compile and link two files from ``shaders/``."""
    shaders = []
    for name, kind in ((vertex_file, gl.GL_VERTEX_SHADER), (fragment_file, gl.GL_FRAGMENT_SHADER)):
        shader = gl.glCreateShader(kind)
        gl.glShaderSource(shader, (SHADER_DIR / name).read_text())
        gl.glCompileShader(shader)
        if not gl.glGetShaderiv(shader, gl.GL_COMPILE_STATUS):
            raise ShaderError(f"shaders/{name}: {gl.glGetShaderInfoLog(shader).decode(errors='replace').strip()}")
        shaders.append(shader)
    program = gl.glCreateProgram()
    for shader in shaders:
        gl.glAttachShader(program, shader)
    gl.glLinkProgram(program)
    if not gl.glGetProgramiv(program, gl.GL_LINK_STATUS):
        raise ShaderError(f"{vertex_file}+{fragment_file}: {gl.glGetProgramInfoLog(program).decode(errors='replace')}")
    for shader in shaders:
        gl.glDeleteShader(shader)
    return program


def fit_rect(x: float, y: float, width: float, height: float, aspect: float) -> tuple[int, int, int, int]:
    """The largest centred (x, y, w, h) of the given width/height aspect inside a rectangle."""
    w = min(width, height * aspect)
    h = w / aspect
    return int(round(x + (width - w) / 2)), int(round(y + (height - h) / 2)), int(round(w)), int(round(h))


class _MeshBuffers:
    """Vertex and index buffers of one mesh (positions, normals, colours interleaved)."""

    def __init__(self):
        self.vao = gl.glGenVertexArrays(1)
        self.vbo, self.ebo = gl.glGenBuffers(2)
        self.count = 0
        self.has_colors = False
        self.mesh_id: int | None = None

    def upload(self, mesh) -> None:
        vertices = np.asarray(mesh.vertices, dtype=np.float32)
        normals = np.asarray(mesh.vertex_normals(), dtype=np.float32)
        if mesh.vertex_colors is not None:
            colors = np.asarray(mesh.vertex_colors, dtype=np.float32)[:, :3] / 255.0
        else:
            colors = np.full_like(vertices, 0.72)
        data = np.ascontiguousarray(np.concatenate([vertices, normals, colors], axis=1), dtype=np.float32)
        faces = np.ascontiguousarray(mesh.faces, dtype=np.uint32)
        gl.glBindVertexArray(self.vao)
        gl.glBindBuffer(gl.GL_ARRAY_BUFFER, self.vbo)
        gl.glBufferData(gl.GL_ARRAY_BUFFER, data.nbytes, data, gl.GL_STATIC_DRAW)
        gl.glBindBuffer(gl.GL_ELEMENT_ARRAY_BUFFER, self.ebo)
        gl.glBufferData(gl.GL_ELEMENT_ARRAY_BUFFER, faces.nbytes, faces, gl.GL_STATIC_DRAW)
        stride = 9 * 4
        for location in range(3):
            gl.glEnableVertexAttribArray(location)
            gl.glVertexAttribPointer(location, 3, gl.GL_FLOAT, gl.GL_FALSE, stride, ctypes.c_void_p(12 * location))
        gl.glBindVertexArray(0)
        self.count = int(faces.size)
        self.has_colors = mesh.vertex_colors is not None
        self.mesh_id = id(mesh)

    def delete(self) -> None:
        gl.glDeleteBuffers(2, [self.vbo, self.ebo])
        gl.glDeleteVertexArrays(1, [self.vao])


class Viewport:
    """Draws frames; owns the GL objects (create and use it on the GL thread only)."""

    def __init__(self, uploader):
        self.uploader = uploader
        self.programs = {
            "color": compile_program("quad.vert", "color.frag"),
            "depth": compile_program("quad.vert", "depth.frag"),
            "normals": compile_program("quad.vert", "normals.frag"),
            "mesh": compile_program("mesh.vert", "mesh.frag"),
        }
        self.quad_vao = gl.glGenVertexArrays(1)  # core profile draws need a bound VAO
        self.textures = {"color": Texture2D("rgba8"), "depth": Texture2D("r32f", filter="nearest"),
                         "normals": Texture2D("rgba32f", filter="nearest")}
        self.lut = Texture2D("rgba8", filter="nearest")
        self._lut_name: str | None = None
        self.mesh = _MeshBuffers()
        self.frame: DisplayFrame | None = None
        self._fbo: tuple[int, int, int, tuple[int, int]] | None = None

    # --- frames ---------------------------------------------------------------------------------

    def set_frame(self, frame: DisplayFrame, ready_event=None) -> None:
        """Upload a frame's images (and mesh) and make it the one drawn. ``ready_event``: the render
        worker's CUDA event for the frame (``Texture2D.upload``: the copies wait for it on the GPU)."""
        for name in ("color", "depth", "normals"):
            tensor = getattr(frame, name)
            if tensor is not None:
                self.textures[name].upload(tensor, self.uploader, ready_event=ready_event)
        if frame.mesh is not None and self.mesh.mesh_id != id(frame.mesh):
            self.mesh.upload(frame.mesh)
        self.frame = frame

    def content_aspect(self) -> float:
        return 2.0 if self.frame is not None and self.frame.mode == "side" else 1.0

    def native_size(self) -> tuple[int, int]:
        """(width, height) of the image at the generator's resolution."""
        if self.frame is None:
            return (0, 0)
        sizes = [t.shape[0] for t in (self.frame.color, self.frame.depth, self.frame.normals) if t is not None]
        side = max([self.frame.image_resolution, *sizes])
        return (2 * side, side) if self.frame.mode == "side" else (side, side)

    # --- drawing --------------------------------------------------------------------------------

    def draw(self, rect: tuple[int, int, int, int], framebuffer_height: int, display: DisplayArgs,
             view_camera: torch.Tensor | None) -> None:
        """Draw the current frame fitted into ``rect`` = (x, y, w, h), y from the top (window pixels)."""
        if self.frame is None:
            return
        x, y, w, h = fit_rect(*rect, self.content_aspect())
        gl_y = framebuffer_height - y - h
        if self.frame.mode == "side":
            half = w // 2
            self._draw_plane("color", (x, gl_y, half, h), display)
            self._draw_plane("depth", (x + half, gl_y, w - half, h), display)
        elif self.frame.mode == "mesh":
            self._draw_mesh((x, gl_y, w, h), display, view_camera if view_camera is not None else self.frame.camera)
        else:
            plane = {"rgb": "color", "raw": "color", "depth": "depth", "normals": "normals"}[self.frame.mode]
            self._draw_plane(plane, (x, gl_y, w, h), display)

    def _draw_plane(self, plane: str, gl_rect: tuple[int, int, int, int], display: DisplayArgs) -> None:
        gl.glViewport(*gl_rect)
        gl.glDisable(gl.GL_DEPTH_TEST)
        gl.glDisable(gl.GL_BLEND)
        program = self.programs[plane]
        gl.glUseProgram(program)
        gl.glUniform4f(gl.glGetUniformLocation(program, "rect"), -1.0, -1.0, 1.0, 1.0)
        self.textures[plane].bind(0)
        if plane == "color":
            gl.glUniform1i(gl.glGetUniformLocation(program, "image"), 0)
        elif plane == "depth":
            self._bind_lut(display.colormap, unit=1)
            near, far = depth_limits(self.frame, display)
            gl.glUniform1i(gl.glGetUniformLocation(program, "depth"), 0)
            gl.glUniform1i(gl.glGetUniformLocation(program, "lut"), 1)
            gl.glUniform1f(gl.glGetUniformLocation(program, "near_depth"), near)
            gl.glUniform1f(gl.glGetUniformLocation(program, "far_depth"), far)
            gl.glUniform1i(gl.glGetUniformLocation(program, "invert"), int(display.depth_invert))
        else:
            gl.glUniform1i(gl.glGetUniformLocation(program, "normals"), 0)
            gl.glUniform1i(gl.glGetUniformLocation(program, "style"), 0 if display.normals_style == "color" else 1)
            gl.glUniform3f(gl.glGetUniformLocation(program, "light"), *LIGHT_DIRECTION)
        gl.glBindVertexArray(self.quad_vao)
        gl.glDrawArrays(gl.GL_TRIANGLE_STRIP, 0, 4)
        gl.glBindVertexArray(0)

    def _bind_lut(self, name: str, unit: int) -> None:
        if self._lut_name != name:
            lut = colormap_lut(name)
            rgba = np.concatenate([lut, np.full((lut.shape[0], 1), 255, np.uint8)], axis=1)[None]
            self.lut.upload(torch.from_numpy(np.ascontiguousarray(rgba)), self.uploader)
            self._lut_name = name
        self.lut.bind(unit)

    def _draw_mesh(self, gl_rect: tuple[int, int, int, int], display: DisplayArgs, camera: torch.Tensor) -> None:
        if self.mesh.count == 0:
            return
        gl.glViewport(*gl_rect)
        gl.glEnable(gl.GL_SCISSOR_TEST)
        gl.glScissor(*gl_rect)
        gl.glClearColor(*BACKGROUND, 1.0)
        gl.glClear(gl.GL_DEPTH_BUFFER_BIT)
        gl.glDisable(gl.GL_SCISSOR_TEST)
        gl.glEnable(gl.GL_DEPTH_TEST)
        gl.glDepthFunc(gl.GL_LESS)
        distance = float(torch.linalg.norm(camera[:16].reshape(4, 4)[:3, 3]))
        view, projection = opengl_matrices(camera, near=max(0.01, 0.05 * distance), far=distance + 10.0)
        program = self.programs["mesh"]
        gl.glUseProgram(program)
        gl.glUniformMatrix4fv(gl.glGetUniformLocation(program, "view"), 1, gl.GL_TRUE, view.numpy())
        gl.glUniformMatrix4fv(gl.glGetUniformLocation(program, "projection"), 1, gl.GL_TRUE, projection.numpy())
        gl.glUniform1i(gl.glGetUniformLocation(program, "use_vertex_color"), int(self.mesh.has_colors))
        gl.glBindVertexArray(self.mesh.vao)
        gl.glUniform1i(gl.glGetUniformLocation(program, "wire"), 0)
        if display.mesh_wireframe:
            gl.glEnable(gl.GL_POLYGON_OFFSET_FILL)
            gl.glPolygonOffset(1.0, 1.0)  # keeps the edge pass in front of its own faces
        gl.glDrawElements(gl.GL_TRIANGLES, self.mesh.count, gl.GL_UNSIGNED_INT, None)
        if display.mesh_wireframe:
            gl.glDisable(gl.GL_POLYGON_OFFSET_FILL)
            gl.glPolygonMode(gl.GL_FRONT_AND_BACK, gl.GL_LINE)
            gl.glUniform1i(gl.glGetUniformLocation(program, "wire"), 1)
            gl.glDrawElements(gl.GL_TRIANGLES, self.mesh.count, gl.GL_UNSIGNED_INT, None)
            gl.glPolygonMode(gl.GL_FRONT_AND_BACK, gl.GL_FILL)
        gl.glBindVertexArray(0)
        gl.glDisable(gl.GL_DEPTH_TEST)

    # --- read-back ------------------------------------------------------------------------------

    def render_image(self, display: DisplayArgs, view_camera: torch.Tensor | None = None,
                     size: tuple[int, int] | None = None) -> np.ndarray:
        """[H, W, 3] uint8: the current frame drawn off-screen at ``size`` (default: native)."""
        if self.frame is None:
            raise RuntimeError("nothing rendered yet")
        width, height = size or self.native_size()
        fbo, color_rb, depth_rb = self._framebuffer(width, height)
        previous = gl.glGetIntegerv(gl.GL_FRAMEBUFFER_BINDING)
        gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, fbo)
        try:
            gl.glViewport(0, 0, width, height)
            gl.glClearColor(*BACKGROUND, 1.0)
            gl.glClear(gl.GL_COLOR_BUFFER_BIT | gl.GL_DEPTH_BUFFER_BIT)
            self.draw((0, 0, width, height), height, display, view_camera)
            return read_pixels(0, 0, width, height)
        finally:
            gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, previous)

    def _framebuffer(self, width: int, height: int) -> tuple[int, int, int]:
        if self._fbo is not None and self._fbo[3] == (width, height):
            return self._fbo[:3]
        if self._fbo is not None:
            gl.glDeleteFramebuffers(1, [self._fbo[0]])
            gl.glDeleteRenderbuffers(2, list(self._fbo[1:3]))
        fbo = gl.glGenFramebuffers(1)
        color_rb, depth_rb = gl.glGenRenderbuffers(2)
        gl.glBindRenderbuffer(gl.GL_RENDERBUFFER, color_rb)
        gl.glRenderbufferStorage(gl.GL_RENDERBUFFER, gl.GL_RGBA8, width, height)
        gl.glBindRenderbuffer(gl.GL_RENDERBUFFER, depth_rb)
        gl.glRenderbufferStorage(gl.GL_RENDERBUFFER, gl.GL_DEPTH_COMPONENT24, width, height)
        previous = gl.glGetIntegerv(gl.GL_FRAMEBUFFER_BINDING)
        gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, fbo)
        gl.glFramebufferRenderbuffer(gl.GL_FRAMEBUFFER, gl.GL_COLOR_ATTACHMENT0, gl.GL_RENDERBUFFER, color_rb)
        gl.glFramebufferRenderbuffer(gl.GL_FRAMEBUFFER, gl.GL_DEPTH_ATTACHMENT, gl.GL_RENDERBUFFER, depth_rb)
        status = gl.glCheckFramebufferStatus(gl.GL_FRAMEBUFFER)
        gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, previous)
        if status != gl.GL_FRAMEBUFFER_COMPLETE:
            raise RuntimeError(f"off-screen framebuffer {width}x{height} incomplete (status {status:#x})")
        self._fbo = (fbo, color_rb, depth_rb, (width, height))
        return fbo, color_rb, depth_rb

    def delete(self) -> None:
        for texture in (*self.textures.values(), self.lut):
            texture.delete()
        self.mesh.delete()
        for program in self.programs.values():
            gl.glDeleteProgram(program)


def read_pixels(x: int, y: int, width: int, height: int) -> np.ndarray:
    """[H, W, 3] uint8 of the bound framebuffer's region, top row first."""
    gl.glPixelStorei(gl.GL_PACK_ALIGNMENT, 1)
    data = gl.glReadPixels(x, y, width, height, gl.GL_RGB, gl.GL_UNSIGNED_BYTE)
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)[::-1].copy()
