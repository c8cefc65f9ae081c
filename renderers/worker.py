"""The render worker: one background thread that owns the generator and turns requests into frames.

The UI thread never waits on the generator. It posts ``RenderArgs`` with ``request``; only the
newest pending request is kept (older ones are replaced before they start), and ``poll`` hands back
the newest finished frame, dropping any that an even newer one has overtaken. Long tasks (loading
a model, recording a video, exporting a mesh) run as *jobs* on the same thread, so the generator is
only ever touched by one thread; they report progress, can be cancelled, and their errors come
back as messages. Exceptions never escape the thread: a failed render is a ``Frame`` whose
``error`` says what went wrong, and the previous model stays loaded.

A job does not stop the viewport: each ``job.progress`` call (a video calls it after every frame,
a mesh after every chunk of its density grid) is a step between which the worker renders the
newest pending interactive request, still on this one thread. The global RNG state is put back
after such a frame, so a job's output is the same whether or not the user moved the camera.
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from renderers.batching import is_out_of_memory
from renderers.display_frame import DisplayFrame, to_display_frame
from renderers.render_args import RenderArgs
from renderers.renderer import GeneratorRenderer


@dataclass
class Frame:
    """A finished render, or the error that stopped it."""

    request_id: int
    """Increasing id of the request this answers."""
    args: RenderArgs
    """The request."""
    display: DisplayFrame | None = None
    """Texture-ready tensors (None on error)."""
    error: str | None = None
    """One-paragraph message for the viewport."""
    render_ms: float = 0.0
    """Generator time (all stages before conversion)."""
    convert_ms: float = 0.0
    """Time to turn outputs into texture layouts."""
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    """Per-stage times from the renderer (on CUDA read from events: see ``ready``)."""
    ready_event: Any = None
    """torch.cuda.Event recorded on the worker's stream after the frame's kernels (CUDA only): the
    upload waits on it on the GPU (``Texture2D.upload``), the CPU does not."""
    model_generation: int = 0
    """Which loaded model rendered it (increments on each successful load)."""

    def ready(self) -> bool:
        """Its GPU work has finished (always on the CPU): ``timings_ms`` can be read without waiting."""
        return self.ready_event is None or self.ready_event.query()


class JobCancelled(Exception):
    """Raised inside a job when its cancel flag is seen."""


@dataclass
class Job:
    """A long task run on the render thread: ``fn(job, renderer) -> result``.

    Interactive frames render between its ``progress`` calls (see the module docstring); a job that
    must not be interleaved (loading a model) simply does not call ``progress``."""

    name: str
    """Shown in the UI while it runs."""
    fn: Callable[[Job, GeneratorRenderer | None], Any]
    """The work; calls ``job.progress(done, total)`` and ``job.check_cancel()`` as it goes."""
    done: int = 0
    """Progress numerator."""
    total: int = 0
    """Progress denominator (0: unknown)."""
    result: Any = None
    """Return value of ``fn`` once finished."""
    error: str | None = None
    """Message if it failed."""
    cancelled: bool = False
    """It stopped because ``cancel()`` was called."""
    finished: bool = False
    """It has stopped (for any reason)."""
    unit: str = ""
    """What ``done`` and ``total`` count, when people care (``"frames"``); "": show a percentage."""
    _cancel_flag: threading.Event = field(default_factory=threading.Event, repr=False)
    _between_steps: Callable[[], None] | None = field(default=None, repr=False)
    """Set by the worker while it runs the job: renders a pending interactive request."""

    def progress(self, done: int, total: int) -> None:
        """Record progress, stop here if cancelled, else let a waiting interactive frame render."""
        self.done, self.total = int(done), int(total)
        self.check_cancel()
        if self._between_steps is not None:
            self._between_steps()

    def check_cancel(self) -> None:
        if self._cancel_flag.is_set():
            raise JobCancelled()

    def cancel(self) -> None:
        self._cancel_flag.set()

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


def describe_error(exc: BaseException) -> str:
    """A message for the viewport: the problem first, and for out-of-memory what to do."""
    if is_out_of_memory(exc):
        return ("out of memory while rendering: lower the neural resolution or samples per ray, "
                "turn super-resolution off, or lower the mesh resolution")
    text = f"{type(exc).__name__}: {exc}".strip()
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        text += f"  ({last.filename.rsplit('/', 1)[-1]}:{last.lineno})"
    return text


class RenderWorker:
    """Background render thread with newest-wins requests and cancellable jobs."""

    def __init__(self, renderer: GeneratorRenderer | None = None, name: str = "render-worker",
                 synchronize_frames: bool = False):
        self.renderer = renderer
        self.synchronize_frames = synchronize_frames
        """Wait on the CPU for each CUDA frame before handing it on (the old behaviour; benchmarks
        compare it with the default event handoff)."""
        self.model_generation = 1 if renderer is not None else 0
        self._lock = threading.Condition()
        self._pending: tuple[int, RenderArgs] | None = None
        self._jobs: list[Job] = []
        self._finished_jobs: list[Job] = []
        self._current_job: Job | None = None
        self._latest: Frame | None = None
        self._next_id = 1
        self._delivered_id = 0
        self._stop = False
        self._stream: Any = None  # torch.cuda.Stream of the worker's GPU work (created on first use)
        self._stream_renderer: Any = None  # the renderer it was set up for
        self.busy = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # --- UI-thread API --------------------------------------------------------------------------

    def request(self, args: RenderArgs) -> int:
        """Queue a render of a copy of ``args``, replacing any request not yet started."""
        with self._lock:
            request_id = self._next_id
            self._next_id += 1
            self._pending = (request_id, args.copy())
            self._lock.notify_all()
            return request_id

    def submit(self, job: Job) -> Job:
        """Run a job after the current render; jobs run in submission order."""
        with self._lock:
            self._jobs.append(job)
            self._lock.notify_all()
        return job

    def poll(self) -> Frame | None:
        """The newest finished frame not yet delivered, or None. Older frames are dropped."""
        with self._lock:
            frame = self._latest
            if frame is None or frame.request_id <= self._delivered_id:
                return None
            self._delivered_id = frame.request_id
            self._latest = None
            return frame

    def finished_jobs(self) -> list[Job]:
        """Jobs that stopped since the last call."""
        with self._lock:
            jobs, self._finished_jobs = self._finished_jobs, []
            return jobs

    @property
    def idle(self) -> bool:
        """No request pending or running and no job queued."""
        with self._lock:
            return self._pending is None and not self._jobs and not self.busy

    def wait_idle(self, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle:
                return True
            time.sleep(0.002)
        return False

    def close(self) -> None:
        """Stop the thread: the running job is cancelled, queued jobs finish as cancelled unrun."""
        with self._lock:
            self._stop = True
            if self._current_job is not None:
                self._current_job.cancel()
            queued, self._jobs = self._jobs, []
            for job in queued:
                job.cancel()
                job.cancelled = job.finished = True
            self._finished_jobs.extend(queued)
            self._lock.notify_all()
        self._thread.join(timeout=10)

    # --- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            with self._lock:
                while not self._stop and self._pending is None and not self._jobs:
                    self._lock.wait()
                if self._stop:
                    return
                self.busy = True
                if self._jobs:
                    job, pending = self._jobs.pop(0), None
                    self._current_job = job
                else:
                    job, pending = None, self._pending
                    self._pending = None
            try:
                if job is not None:
                    self._run_job(job)
                else:
                    self._publish(self._render(*pending))
            finally:
                with self._lock:
                    self.busy = False
                    self._current_job = None

    def _publish(self, frame: Frame) -> None:
        with self._lock:
            if self._latest is None or frame.request_id > self._latest.request_id:
                self._latest = frame

    def _render_between_job_steps(self) -> None:
        """Render the newest pending request in the middle of a job (called from ``job.progress``)."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return
        # Models that sample at random in eval (e.g. EpiGRAF's jittered depths) would otherwise see a
        # different random stream in the job's next step, and a video would depend on the user's input.
        device = getattr(self.renderer, "device", None)
        cuda = [device] if isinstance(device, torch.device) and device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            self._publish(self._render(*pending))

    def _render(self, request_id: int, args: RenderArgs) -> Frame:
        frame = Frame(request_id=request_id, args=args, model_generation=self.model_generation)
        if self.renderer is None:
            frame.error = "no model loaded"
            return frame
        try:
            with self._device_stream():
                t0 = time.perf_counter()
                output = self.renderer.render(args)
                t1 = time.perf_counter()
                frame.display = to_display_frame(output)
                if output.camera.device.type == "cuda":
                    # Handed on unsynchronised: the UI's upload waits for this event on the GPU, so
                    # the next render can start while this frame is still being computed and drawn.
                    frame.ready_event = torch.cuda.Event()
                    frame.ready_event.record()
                    if self.synchronize_frames:
                        frame.ready_event.synchronize()
                t2 = time.perf_counter()
            frame.timings_ms = output.timings_ms
            frame.render_ms = 1000 * (t1 - t0)  # on CUDA: the time to queue the work (GPU times: timings_ms)
            frame.convert_ms = 1000 * (t2 - t1)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a viewport message
            frame.error = describe_error(exc)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        return frame

    def _device_stream(self):
        """A context that puts this thread's CUDA work on the worker's own stream (nothing on the CPU):
        renders and jobs share it, so what a job caches (tri-planes) is ordered with the frames."""
        device = getattr(self.renderer, "device", None)
        if not isinstance(device, torch.device) or device.type != "cuda":
            return contextlib.nullcontext()
        if self._stream_renderer is not self.renderer:
            # A model loaded by a job that began on another stream (or device) is on the GPU before use.
            torch.cuda.synchronize(device)
            if self._stream is None or self._stream.device != device:
                self._stream = torch.cuda.Stream(device)
            self._stream_renderer = self.renderer
        return torch.cuda.stream(self._stream)

    def _run_job(self, job: Job) -> None:
        job._between_steps = self._render_between_job_steps
        try:
            job.check_cancel()  # cancelled while queued: never start it
            with self._device_stream():
                job.result = job.fn(job, self.renderer)
        except JobCancelled:
            job.cancelled = True
        except Exception as exc:  # noqa: BLE001
            job.error = describe_error(exc)
        finally:
            job._between_steps = None
            job.finished = True
            with self._lock:
                self._finished_jobs.append(job)

    def replace_renderer(self, renderer: GeneratorRenderer) -> None:
        """Swap the model (call from a job, i.e. on the render thread)."""
        self.renderer = renderer
        self.model_generation += 1
