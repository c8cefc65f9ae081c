"""The render worker (newest-wins requests, jobs, errors), adaptive quality and model sources.

Renderers here are fakes: ``render(args)`` returns a tiny ``RenderOutput`` on the CPU, and a gated
fake blocks inside ``render`` until the test hands it a permit, so every ordering is forced by
events and no test depends on timing. Every wait has a generous timeout so a bug fails, not hangs.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field

import pytest
import torch

from app.adaptive import AdaptiveQuality
from renderers.model_source import DEFAULT_MODEL, RunFollower, SourceError, resolve_source
from renderers.render_args import QualityArgs, RenderArgs
from renderers.renderer import RenderOutput
from renderers.worker import Frame, Job, RenderWorker, describe_error
from training.run_dir import snapshot_name

WAIT = 10.0
"""Seconds any wait may take before the test fails (never reached when the code is right)."""


def args_for(seed: int, **kwargs) -> RenderArgs:
    """A request identified by its integer seed."""
    args = RenderArgs(**kwargs)
    args.latent.seed_x = float(seed)
    return args


def seed_of(args: RenderArgs) -> int:
    return int(args.latent.seed_x)


class FakeRenderer:
    """Returns a 4x4 rgb ``RenderOutput``; when gated, each render waits for one permit."""

    def __init__(self, label: str = "A", gated: bool = False, events: list | None = None):
        self.label = label
        self.gated = gated
        self.permits = threading.Semaphore(0)
        self.entered: queue.Queue[RenderArgs] = queue.Queue()
        self.rendered: list[int] = []
        self.events = events if events is not None else []
        self.fail: dict[int, BaseException] = {}
        """seed -> exception to raise for it."""

    def allow(self, n: int = 1) -> None:
        for _ in range(n):
            self.permits.release()

    def open(self) -> None:
        """Stop gating (teardown: lets a blocked render finish)."""
        self.gated = False
        self.allow(1000)

    def render(self, args: RenderArgs) -> RenderOutput:
        self.entered.put(args)
        if self.gated and not self.permits.acquire(timeout=WAIT):
            raise TimeoutError("the test never released the fake renderer")
        seed = seed_of(args)
        if seed in self.fail:
            raise self.fail[seed]
        self.rendered.append(seed)
        self.events.append(f"render:{self.label}:{seed}")
        return RenderOutput(args=args, camera=torch.zeros(1, 25), image_resolution=4,
                            image=torch.zeros(3, 4, 4), timings_ms={"render": 1.5})

    def wait_entered(self) -> RenderArgs:
        return self.entered.get(timeout=WAIT)


@dataclass
class WatchedJob(Job):
    """A job that also signals when someone asks it to cancel."""

    cancel_requested: threading.Event = field(default_factory=threading.Event, repr=False)

    def cancel(self) -> None:
        super().cancel()
        self.cancel_requested.set()


@pytest.fixture
def make_worker():
    """Build workers whose fake renderers are ungated and which are closed at teardown."""
    made: list[tuple[RenderWorker, list[FakeRenderer]]] = []

    def make(renderer: FakeRenderer | None = None, name: str = "test-render-worker") -> RenderWorker:
        worker = RenderWorker(renderer, name=name)
        made.append((worker, [renderer] if renderer is not None else []))
        return worker

    yield make
    for worker, renderers in made:
        for r in renderers + [x for x in (worker.renderer,) if isinstance(x, FakeRenderer)]:
            r.open()
        worker.close()


def settle(worker: RenderWorker) -> None:
    assert worker.wait_idle(timeout=WAIT), "worker did not become idle"


# --- requests and frames --------------------------------------------------------------------------


def test_frame_carries_display_timings_and_generation(make_worker):
    """A successful render gives a Frame with the request copy, texture-ready colour, the renderer's
    stage timings and the model generation; the worker renders a copy, not the caller's object."""
    renderer = FakeRenderer()
    worker = make_worker(renderer)
    args = args_for(7)
    request_id = worker.request(args)
    args.latent.seed_x = 99.0  # editing the caller's args after request must not matter
    settle(worker)
    frame = worker.poll()
    assert isinstance(frame, Frame)
    assert frame.request_id == request_id
    assert frame.error is None
    assert seed_of(frame.args) == 7 and frame.args is not args
    assert frame.display is not None and frame.display.color.shape == (4, 4, 4)
    assert frame.display.color.dtype == torch.uint8
    assert frame.timings_ms == {"render": 1.5}
    assert frame.render_ms >= 0 and frame.convert_ms >= 0
    assert frame.model_generation == 1
    assert renderer.rendered == [7]


class FakeCudaEvent:
    """Stands in for ``torch.cuda.Event(enable_timing=True)``: recorded at a given GPU time (ms), done
    once the test says so; ``synchronize`` on an unfinished event is a test failure (a CPU wait)."""

    def __init__(self, at_ms: float, done: bool = False):
        self.at_ms, self.done, self.waited = at_ms, done, False

    def query(self) -> bool:
        return self.done

    def synchronize(self) -> None:
        self.waited = True
        assert self.done, "waited on the CPU for an unfinished frame"

    def elapsed_time(self, later: FakeCudaEvent) -> float:
        return later.at_ms - self.at_ms


def test_cuda_stage_timings_are_read_from_events_only_when_asked():
    """On CUDA the renderer's stage times are events: building them waits for nothing, ``ready`` asks
    the last event, and reading them sums the gaps between the stage marks (a stage may lap twice)."""
    from renderers.renderer import StageTimings

    marks = [("", FakeCudaEvent(0.0)), ("backbone", FakeCudaEvent(4.0)), ("render", FakeCudaEvent(10.0)),
             ("render", FakeCudaEvent(11.0)), ("superres", FakeCudaEvent(18.5))]
    timings = StageTimings(marks)
    assert not timings.ready() and not any(event.waited for _, event in marks)
    marks[-1][1].done = True
    assert timings.ready()
    assert dict(timings) == {"backbone": 4.0, "render": 7.0, "superres": 7.5}
    assert timings.get("mapping", 0.0) == 0.0 and len(timings) == 3


def test_a_cuda_frame_is_ready_when_its_event_is():
    """The worker hands a CUDA frame on with its event, unsynchronised; the UI asks ``ready`` before it
    reads the frame's times (a CPU frame has no event and is always ready)."""
    assert Frame(request_id=1, args=RenderArgs()).ready()
    event = FakeCudaEvent(0.0)
    frame = Frame(request_id=2, args=RenderArgs(), ready_event=event)
    assert not frame.ready()
    event.done = True
    assert frame.ready()


def test_newest_request_wins(make_worker):
    """While request 1 renders, requests 2..10 each replace the previous pending one: only 1 and 10
    are rendered, and poll hands back frame 10 (frame 1 was overtaken before anyone polled)."""
    renderer = FakeRenderer(gated=True)
    worker = make_worker(renderer)
    ids = [worker.request(args_for(1))]
    assert seed_of(renderer.wait_entered()) == 1  # request 1 is now running, blocked in render
    ids += [worker.request(args_for(i)) for i in range(2, 11)]
    assert ids == sorted(ids) and len(set(ids)) == 10
    assert worker.poll() is None  # nothing finished yet
    renderer.allow(2)
    settle(worker)
    assert renderer.rendered == [1, 10]
    frame = worker.poll()
    assert frame is not None and frame.request_id == ids[-1] and seed_of(frame.args) == 10
    assert worker.poll() is None  # delivered once only
    assert renderer.entered.qsize() == 1  # request 10 was the only other render started


def test_poll_delivers_each_frame_once_in_order(make_worker):
    """Polling between renders yields each finished frame exactly once, None when nothing new."""
    renderer = FakeRenderer(gated=True)
    worker = make_worker(renderer)
    assert worker.poll() is None
    first = worker.request(args_for(1))
    renderer.wait_entered()
    assert worker.poll() is None  # still rendering
    renderer.allow()
    settle(worker)
    frame = worker.poll()
    assert frame.request_id == first
    assert worker.poll() is None
    second = worker.request(args_for(2))
    renderer.wait_entered()
    renderer.allow()
    settle(worker)
    assert worker.poll().request_id == second
    assert worker.poll() is None


def test_frame_older_than_delivered_is_never_delivered(make_worker):
    """If a frame with an id at or below the last delivered one becomes the latest (e.g. a stale
    result), poll drops it rather than showing an older picture."""
    worker = make_worker(FakeRenderer())
    worker.request(args_for(1))
    newer = worker.request(args_for(2))
    settle(worker)
    assert worker.poll().request_id == newer
    stale = Frame(request_id=newer - 1, args=args_for(1))
    with worker._lock:  # inject a stale finished frame directly: the render thread never makes one
        worker._latest = stale
    assert worker.poll() is None


def test_exception_becomes_frame_error_and_worker_keeps_serving(make_worker):
    """A renderer exception is a Frame.error naming its type and message (no display); the thread
    survives and the next request renders normally."""
    renderer = FakeRenderer()
    renderer.fail[2] = ValueError("seed 2 is cursed")
    worker = make_worker(renderer)
    worker.request(args_for(2))
    settle(worker)
    frame = worker.poll()
    assert frame.display is None
    assert "ValueError" in frame.error and "seed 2 is cursed" in frame.error
    worker.request(args_for(3))
    settle(worker)
    frame = worker.poll()
    assert frame.error is None and frame.display is not None and seed_of(frame.args) == 3


def _oom_errors() -> list[BaseException]:
    errors: list[BaseException] = [RuntimeError("CUDA error: out of memory")]
    try:
        errors.append(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    except (AttributeError, TypeError):  # older torch: no constructible OutOfMemoryError
        pass
    return errors


@pytest.mark.parametrize("exc", _oom_errors(), ids=lambda e: type(e).__name__)
def test_out_of_memory_suggests_lowering_resolution(make_worker, exc):
    """Out-of-memory failures read as advice: lower the resolution (and similar settings)."""
    renderer = FakeRenderer()
    renderer.fail[5] = exc
    worker = make_worker(renderer)
    worker.request(args_for(5))
    settle(worker)
    error = worker.poll().error
    assert "out of memory" in error
    assert "lower the neural resolution" in error
    assert describe_error(exc) == error


def test_describe_error_names_type_message_and_location():
    """describe_error: 'Type: message' followed by the file and line that raised."""
    try:
        raise KeyError("no such layer")
    except KeyError as e:
        text = describe_error(e)
    assert text.startswith("KeyError: ")
    assert "no such layer" in text
    assert "test_worker.py:" in text
    assert describe_error(ValueError("plain")) == "ValueError: plain"  # never raised: no location


def test_no_model_loaded(make_worker):
    """Without a renderer every request answers 'no model loaded' at generation 0."""
    worker = make_worker(None)
    assert worker.model_generation == 0
    worker.request(args_for(1))
    settle(worker)
    frame = worker.poll()
    assert frame.error == "no model loaded"
    assert frame.display is None and frame.model_generation == 0


# --- idle ----------------------------------------------------------------------------------------


def test_idle_and_wait_idle(make_worker):
    """idle is False from request() until the render finishes (pending, then busy) and while jobs
    are queued; wait_idle returns False when the work cannot finish in time, True once it has."""
    renderer = FakeRenderer(gated=True)
    worker = make_worker(renderer)
    assert worker.idle and worker.wait_idle(timeout=WAIT)
    worker.request(args_for(1))
    assert not worker.idle  # pending (or already taken and busy): never idle in between
    renderer.wait_entered()
    assert not worker.idle
    assert worker.wait_idle(timeout=0.05) is False  # the render is held by the gate
    job = worker.submit(Job("queued", lambda job, r: "done"))
    renderer.allow()
    settle(worker)
    assert worker.idle and job.finished and job.result == "done"


# --- jobs ----------------------------------------------------------------------------------------


def test_jobs_run_after_current_render_in_submission_order(make_worker):
    """Jobs submitted during a render run once it finishes, in submission order, before the next
    pending request; each job receives the current renderer."""
    events: list[str] = []
    renderer = FakeRenderer(gated=True, events=events)
    worker = make_worker(renderer)
    worker.request(args_for(1))
    renderer.wait_entered()
    seen = []

    def job_fn(name):
        def fn(job, r):
            seen.append(r)
            events.append(f"job:{name}")
            return name
        return fn

    jobs = [worker.submit(Job(name, job_fn(name))) for name in ("A", "B", "C")]
    worker.request(args_for(2))
    renderer.allow(2)
    settle(worker)
    assert events == ["render:A:1", "job:A", "job:B", "job:C", "render:A:2"]
    assert [j.result for j in jobs] == ["A", "B", "C"]
    assert all(r is renderer for r in seen)


def test_job_progress_and_finished_jobs_once(make_worker):
    """job.progress updates done/total/fraction while it runs; finished_jobs returns it once."""
    worker = make_worker(FakeRenderer())
    reached, proceed = threading.Event(), threading.Event()

    def fn(job, r):
        job.progress(1, 4)
        reached.set()
        assert proceed.wait(WAIT)
        job.progress(4, 4)
        return "ok"

    job = worker.submit(Job("steps", fn))
    assert reached.wait(WAIT)
    assert (job.done, job.total, job.fraction) == (1, 4, 0.25)
    assert not job.finished and worker.finished_jobs() == []
    proceed.set()
    settle(worker)
    assert job.finished and job.result == "ok" and job.fraction == 1.0
    assert job.error is None and not job.cancelled
    assert worker.finished_jobs() == [job]
    assert worker.finished_jobs() == []
    assert Job("unknown", lambda j, r: None).fraction == 0.0  # total 0: no division


class RandomRenderer(FakeRenderer):
    """Draws from the global RNG as it renders (as models that sample depths at random in eval do)."""

    def render(self, args: RenderArgs) -> RenderOutput:
        torch.rand(4)
        return super().render(args)


def test_requests_render_between_job_steps_newest_wins(make_worker):
    """Requests posted while a job runs are rendered at its next progress step, the newest only, and
    delivered before the job ends; the job's random stream is as if nothing had rendered."""
    events: list[str] = []
    worker = make_worker(RandomRenderer(events=events))
    paused, proceed = threading.Event(), threading.Event()
    draws = []

    def fn(job, r):
        job.progress(0, 2)
        paused.set()
        assert proceed.wait(WAIT)
        state = torch.get_rng_state()
        job.progress(1, 2)  # renders the newest request here
        draws.append(torch.equal(state, torch.get_rng_state()))
        events.append("job step 2")
        job.progress(2, 2)
        return "ok"

    job = worker.submit(Job("steps", fn))
    assert paused.wait(WAIT)
    worker.request(args_for(1))
    newest = worker.request(args_for(2))
    proceed.set()
    settle(worker)
    assert events == ["render:A:2", "job step 2"]
    assert draws == [True]
    assert job.result == "ok" and job.error is None
    frame = worker.poll()
    assert frame.request_id == newest and seed_of(frame.args) == 2 and frame.error is None


def test_a_job_without_progress_steps_is_not_interleaved(make_worker):
    """A job that never calls ``progress`` (loading a model) runs to its end before any request."""
    events: list[str] = []
    worker = make_worker(FakeRenderer(events=events))
    started, proceed = threading.Event(), threading.Event()

    def fn(job, r):
        started.set()
        assert proceed.wait(WAIT)
        events.append("job end")

    worker.submit(Job("load", fn))
    assert started.wait(WAIT)
    worker.request(args_for(5))
    proceed.set()
    settle(worker)
    assert events == ["job end", "render:A:5"]


def test_cancel_running_job(make_worker):
    """Cancelling a running job stops it at its next progress call: cancelled, finished, no result."""
    worker = make_worker(FakeRenderer())
    started, proceed = threading.Event(), threading.Event()
    steps = []

    def fn(job, r):
        for i in range(100):
            job.progress(i, 100)
            steps.append(i)
            if i == 1:
                started.set()
                assert proceed.wait(WAIT)
        return "completed"

    job = worker.submit(Job("long", fn))
    assert started.wait(WAIT)
    job.cancel()
    proceed.set()
    settle(worker)
    assert job.cancelled and job.finished
    assert job.result is None and job.error is None
    assert steps == [0, 1]
    assert worker.finished_jobs() == [job]


def test_cancel_queued_job_never_runs(make_worker):
    """A job cancelled before it starts finishes as cancelled without its function running."""
    renderer = FakeRenderer(gated=True)
    worker = make_worker(renderer)
    worker.request(args_for(1))
    renderer.wait_entered()
    ran = threading.Event()

    def fn(job, r):
        ran.set()
        return "should not run"

    job = worker.submit(Job("queued", fn))
    job.cancel()
    renderer.allow()
    settle(worker)
    assert job.cancelled and job.finished and job.result is None
    assert not ran.is_set()


def test_job_error_is_reported_and_worker_continues(make_worker):
    """A job's exception lands in job.error; the worker then serves the next request."""
    worker = make_worker(FakeRenderer())

    def fn(job, r):
        raise FileNotFoundError("weights.safetensors")

    job = worker.submit(Job("load", fn))
    settle(worker)
    assert job.finished and not job.cancelled and job.result is None
    assert "FileNotFoundError" in job.error and "weights.safetensors" in job.error
    assert worker.finished_jobs() == [job]
    worker.request(args_for(3))
    settle(worker)
    assert worker.poll().error is None


def test_replace_renderer_from_job(make_worker):
    """A job that swaps the renderer bumps model_generation; later frames use the new renderer and
    carry the new generation."""
    first, second = FakeRenderer("A"), FakeRenderer("B")
    worker = make_worker(first)
    worker.request(args_for(1))
    settle(worker)
    assert worker.poll().model_generation == 1

    def load(job, current):
        assert current is first
        worker.replace_renderer(second)
        return "loaded"

    job = worker.submit(Job("load B", load))
    settle(worker)
    assert job.result == "loaded"
    assert worker.model_generation == 2 and worker.renderer is second
    worker.request(args_for(2))
    settle(worker)
    frame = worker.poll()
    assert frame.model_generation == 2 and frame.error is None
    assert first.rendered == [1] and second.rendered == [2]


def test_replace_renderer_on_empty_worker(make_worker):
    """Loading into a worker that had no model: generation 0 -> 1, and renders then succeed."""
    worker = make_worker(None)
    renderer = FakeRenderer()
    worker.submit(Job("load", lambda job, r: worker.replace_renderer(renderer)))
    settle(worker)
    assert worker.model_generation == 1
    worker.request(args_for(4))
    settle(worker)
    frame = worker.poll()
    assert frame.error is None and frame.model_generation == 1 and renderer.rendered == [4]


def _thread_alive(name: str) -> bool:
    return any(t.name == name and t.is_alive() for t in threading.enumerate())


def test_close_stops_thread_and_cancels_queued_jobs(make_worker):
    """close() during a render: the render finishes, the thread exits, and queued jobs never run but
    come back finished and cancelled."""
    renderer = FakeRenderer(gated=True)
    worker = make_worker(renderer, name="close-test-worker")
    worker.request(args_for(1))
    renderer.wait_entered()
    ran = []
    queued = [worker.submit(WatchedJob(f"q{i}", lambda job, r, i=i: ran.append(i))) for i in range(2)]
    closer = threading.Thread(target=worker.close)
    closer.start()
    for job in queued:
        assert job.cancel_requested.wait(WAIT)  # close() has marked the worker stopped
    renderer.allow()
    closer.join(WAIT)
    assert not closer.is_alive()
    assert not _thread_alive("close-test-worker")
    assert ran == []
    for job in queued:
        assert job.cancelled and job.finished and job.result is None
    assert worker.finished_jobs() == queued


def test_close_cancels_running_job(make_worker):
    """close() while a job runs cancels it, so the thread stops promptly instead of running on."""
    worker = make_worker(FakeRenderer(), name="close-running-worker")
    started = threading.Event()

    def fn(job, r):
        started.set()
        job.cancel_requested.wait(WAIT)
        job.check_cancel()
        return "ran to the end"

    job = worker.submit(WatchedJob("recording", fn))
    assert started.wait(WAIT)
    worker.close()
    assert not _thread_alive("close-running-worker")
    assert job.cancelled and job.finished and job.result is None


# --- adaptive quality ----------------------------------------------------------------------------

BUDGET_MS = 1000.0 / 30.0


def quality_with_ms_per_ray(ms_per_ray: float, **kwargs) -> AdaptiveQuality:
    """An AdaptiveQuality whose estimate was set by one observed frame (64 x 64 rays)."""
    q = AdaptiveQuality(**kwargs)
    q.observe(ms_per_ray * 64 * 64, 64)
    assert q.ms_per_ray == pytest.approx(ms_per_ray)
    return q


def test_interacting_window():
    """Interacting from a camera input until settle_seconds later; never when disabled."""
    q = AdaptiveQuality(settle_seconds=0.25)
    assert not q.interacting(0.0)  # no input yet
    q.note_camera_input(100.0)
    assert q.interacting(100.0)
    assert q.interacting(100.125)
    assert not q.interacting(100.25)  # exactly settle_seconds later: settled
    assert not q.interacting(105.0)
    q.enabled = False
    assert not q.interacting(100.0)


def test_effective_passthrough_when_settled_or_mesh():
    """Not interacting, disabled, or in mesh mode: effective() returns the very same args object."""
    q = AdaptiveQuality(settle_seconds=0.25)
    args = args_for(1)
    assert q.effective(args, 128, now=50.0) is args
    q.note_camera_input(50.0)
    mesh = args_for(1, mode="mesh")
    assert q.effective(mesh, 128, now=50.1) is mesh
    q.enabled = False
    assert q.effective(args, 128, now=50.1) is args


def test_effective_while_interacting_is_a_faster_copy():
    """While interacting: a copy without super-resolution at a lower neural resolution; the
    original request is untouched."""
    q = AdaptiveQuality()
    q.note_camera_input(10.0)
    args = args_for(3)
    fast = q.effective(args, 128, now=10.0)
    assert fast is not args
    assert fast.quality.superres is False
    assert fast.quality.neural_resolution == 64  # no measurement yet: half resolution
    assert seed_of(fast) == 3
    assert args.quality == QualityArgs()  # unchanged


def test_no_measurement_starts_at_half_resolution():
    """Before any frame is observed the interactive resolution is half the full one."""
    q = AdaptiveQuality()
    assert q.ms_per_ray is None
    assert q.interactive_resolution(128) == 64
    assert q.interactive_resolution(256) == 128
    assert q.interactive_resolution(64) == 32


@pytest.mark.parametrize("fits, expected", [
    (130, 128),  # the full resolution fits
    (100, 96),
    (70, 64),
    (50, 48),
    (40, 32),
    (10, 32),  # nothing fits: the smallest candidate
])
def test_largest_candidate_fitting_budget(fits, expected):
    """With ms_per_ray set so that exactly a `fits` x `fits` frame costs the budget, the choice is
    the largest of 128, 96, 64, 48, 32 whose predicted time fits (else the smallest)."""
    q = quality_with_ms_per_ray(BUDGET_MS / fits**2)
    assert q.interactive_resolution(128) == expected


def test_interactive_resolution_bounds():
    """For many machines and models the choice is a multiple of 4 within [min_resolution, full],
    and it is predicted to fit the frame budget whenever some candidate does."""
    for full in (64, 128, 256, 512):
        for fits in (8, 20, 33, 50, 77, 100, 150, 300, 600):
            q = quality_with_ms_per_ray(BUDGET_MS / fits**2, min_resolution=16)
            r = q.interactive_resolution(full)
            assert r % 4 == 0 and 16 <= r <= full
            if fits >= full // 4:
                assert q.ms_per_ray * r * r <= BUDGET_MS * (1 + 1e-9)


def test_effective_never_exceeds_requested_resolution():
    """A request with its own lower neural resolution is never raised while interacting."""
    q = quality_with_ms_per_ray(BUDGET_MS / 1000**2)  # a very fast machine: 128 would fit
    q.note_camera_input(0.0)
    args = args_for(1, quality=QualityArgs(neural_resolution=48))
    fast = q.effective(args, 128, now=0.0)
    assert fast.quality.neural_resolution == 48 and fast.quality.superres is False
    full = q.effective(args_for(1), 128, now=0.0)
    assert full.quality.neural_resolution == 128 and full.quality.superres is False


def test_min_resolution_respected():
    """On a very slow machine the choice bottoms out at min_resolution, not below."""
    q = quality_with_ms_per_ray(1e3, min_resolution=40)
    r = q.interactive_resolution(128)
    assert r == 40


def test_observe_moving_average():
    """observe(): first sample sets ms_per_ray = ms / r^2; later ones blend with weight
    `smoothing`; non-positive times or resolutions are ignored."""
    q = AdaptiveQuality(smoothing=0.3)
    q.observe(10.0, 10)
    assert q.ms_per_ray == pytest.approx(0.1)
    q.observe(40.0, 10)
    assert q.ms_per_ray == pytest.approx(0.7 * 0.1 + 0.3 * 0.4)
    q.observe(0.0, 10)
    q.observe(-5.0, 10)
    q.observe(10.0, 0)
    assert q.ms_per_ray == pytest.approx(0.19)


# --- model sources ---------------------------------------------------------------------------------


def touch_snapshot(run_dir, nimg: int):
    path = run_dir / snapshot_name(nimg)
    path.write_bytes(b"")
    return path


def test_default_source_is_bundled_model():
    """'' and None resolve to the bundled default generator file."""
    assert DEFAULT_MODEL.is_file()
    for path in ("", None):
        source = resolve_source(path)
        assert source.kind == "file"
        assert source.load_path == str(DEFAULT_MODEL)
        assert source.run_dir is None


def test_preset_and_file_sources(tmp_path):
    """'preset:...' passes through; an existing file is loaded as a file."""
    assert resolve_source("preset:tiny").kind == "preset"
    assert resolve_source("preset:tiny").load_path == "preset:tiny"
    ckpt = tmp_path / "model.safetensors"
    ckpt.write_bytes(b"")
    source = resolve_source(str(ckpt))
    assert (source.kind, source.load_path, source.label) == ("file", str(ckpt), "model.safetensors")


def test_missing_path_raises_naming_it(tmp_path):
    """A path that does not exist raises SourceError naming that path."""
    missing = tmp_path / "no-such-model.safetensors"
    with pytest.raises(SourceError, match="no-such-model.safetensors"):
        resolve_source(str(missing))


def test_empty_directory_raises(tmp_path):
    """A folder without snapshots raises SourceError (it is not silently ignored)."""
    (tmp_path / "log.jsonl").write_text("")
    with pytest.raises(SourceError, match="network-snapshot"):
        resolve_source(str(tmp_path))


def test_run_directory_resolves_newest_snapshot(tmp_path):
    """A run folder resolves to its newest snapshot (by kimg, not by name order of other files)."""
    for nimg in (4000, 12000, 8000):
        touch_snapshot(tmp_path, nimg)
    (tmp_path / "training-state-000016.000.pt").write_bytes(b"")
    (tmp_path / f".{snapshot_name(20000)}.abc123.tmp").write_bytes(b"")  # half-written: ignored
    source = resolve_source(str(tmp_path))
    assert source.kind == "run"
    assert source.load_path == str(tmp_path / snapshot_name(12000))
    assert source.kimg == 12.0
    assert source.run_dir == tmp_path
    assert "12 kimg" in source.label


def test_run_follower_interval_and_newer_snapshot(tmp_path):
    """RunFollower.poll looks at most once per interval, reports nothing while the loaded snapshot
    is the newest, and a source for a newer snapshot once one appears."""
    touch_snapshot(tmp_path, 4000)
    follower = RunFollower(tmp_path, loaded_kimg=4.0, interval=1.0)
    assert follower.poll(now=100.0) is None
    assert follower.newest_kimg == 4.0
    touch_snapshot(tmp_path, 8000)
    assert follower.poll(now=100.5) is None  # within the interval: not even looked
    assert follower.newest_kimg == 4.0
    source = follower.poll(now=101.0)
    assert source is not None and source.kind == "run"
    assert source.kimg == 8.0 and source.load_path == str(tmp_path / snapshot_name(8000))
    assert source.run_dir == tmp_path and follower.newest_kimg == 8.0
    follower.loaded_kimg = 8.0  # the viewer records what it loaded
    assert follower.poll(now=102.0) is None


def test_run_follower_without_loaded_snapshot(tmp_path):
    """With nothing loaded yet, the first snapshot to appear is reported; an empty run gives None."""
    follower = RunFollower(tmp_path, loaded_kimg=None, interval=0.5)
    assert follower.poll(now=0.0) is None
    touch_snapshot(tmp_path, 2000)
    source = follower.poll(now=0.5)
    assert source is not None and source.kimg == 2.0
