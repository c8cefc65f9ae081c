"""Screenshots, video recording and mesh export: the jobs behind the capture panel and scripts.

Videos and meshes run as jobs on the render thread (the only thread that touches the generator),
with progress and cancel; the viewport keeps rendering between their steps (each ``job.progress``,
see ``renderers.worker``). Their files are written to a temp name and renamed, so an aborted or
failed capture never leaves a broken file and never replaces an existing one.
"""

from __future__ import annotations

import copy
from pathlib import Path

from renderers.worker import Job


def video_job(viz, path: str | Path | None = None, *, frames: int | None = None, fps: float | None = None,
              trajectory: str | None = None, mode: str | None = None, seeds: str | None = None,
              height: int | None = None) -> Job:
    """A job that renders and encodes a video of the current request.

    ``trajectory``: orbit, yaw or circle (camera moves around the current view), path (the app's
    keyframe camera path), latent (the camera stays; identity loops through ``seeds`` in W), or a
    camera-path JSON file. ``height``: of the frames in pixels (``resize_to_height``); None: the
    capture panel's size; 0: native.
    """
    from renderers.images import check_height, resize_to_height
    from renderers.sequences import camera_path_frames, latent_loop_ws, parse_seeds, render_frames
    from renderers.trajectories import TRAJECTORIES, CameraPath, trajectory_poses
    from renderers.video import next_numbered_path, write_video

    cap = viz.state.capture
    n = int(frames or cap.video_frames)
    rate = float(fps or cap.video_fps)
    kind = trajectory or cap.video_trajectory
    size = check_height(cap.height if height is None else (height or None))
    args = viz.state.args.copy()
    args.mode = mode or cap.video_mode
    display = copy.deepcopy(viz.state.display)
    seed_text = seeds if seeds is not None else cap.video_seeds
    camera_path = copy.deepcopy(viz.state.camera_path)
    stem = f"video-{kind if kind in TRAJECTORIES else 'path'}"
    target = Path(path) if path else next_numbered_path(cap.out_dir, stem, ".mp4")

    def fn(job: Job, renderer):
        if renderer is None:
            raise RuntimeError("no model loaded")
        ws = None
        if kind in TRAJECTORIES:
            poses = trajectory_poses(kind, n, args.view)
        elif kind == "latent":
            poses = [args.view] * n
            ws = latent_loop_ws(renderer, args, parse_seeds(seed_text), n)
        else:
            path_obj = camera_path if kind == "path" else CameraPath.load(kind)
            if not path_obj.keyframes:
                raise ValueError("the camera path has no keyframes: add some in the capture panel")
            poses, ws = camera_path_frames(renderer, args, path_obj, n_frames=n if kind != "path" else None)
        job.total = len(poses)
        pictures = (resize_to_height(f, size) for f in render_frames(renderer, args, display, poses, ws))
        result = write_video(pictures, target, rate,
                             progress=job.progress, total=len(poses), should_abort=lambda: job._cancel_flag.is_set())
        if result.aborted:
            job.cancelled = True
        return result

    job = Job(f"video {target.name}", fn, unit="frames")
    job.on_done = lambda j: _report(viz, j, lambda r: f"saved {r.path} ({r.frames} frames, {r.seconds:.1f} s)")
    return job


def mesh_job(viz, path: str | Path | None = None, *, fmt: str | None = None, res: int | None = None,
             level: float | None = None, colors: bool | None = None) -> Job:
    """A job that extracts the current identity's mesh and saves it (ply, obj, glb) or its density
    volume (mrc, for ChimeraX)."""
    from renderers.mesh import MESH_FORMATS, save_identity_mesh
    from renderers.video import next_numbered_path

    cap = viz.state.capture
    fmt = (fmt or (Path(path).suffix.lstrip(".") if path else "") or cap.mesh_format).lower()
    if fmt not in MESH_FORMATS:
        raise ValueError(f"mesh format {fmt!r}: choose one of {', '.join(MESH_FORMATS)}")
    resolution = int(res or cap.mesh_resolution)
    iso = cap.mesh_level if level is None else float(level)
    with_colors = bool(cap.mesh_colors if colors is None else colors)
    args = viz.state.args.copy()
    target = Path(path) if path else next_numbered_path(cap.out_dir, "mesh", f".{fmt}")

    def fn(job: Job, renderer):
        if renderer is None:
            raise RuntimeError("no model loaded")
        _, planes = renderer.identity_planes(args)
        mesh = save_identity_mesh(renderer, planes, target, fmt, resolution, iso, with_colors, progress=job.progress,
                                  scene=args.scene)
        return target, mesh

    job = Job(f"mesh {target.name}", fn)
    job.on_done = lambda j: _report(viz, j, lambda r: f"saved {r[0]} ({len(r[1].vertices)} vertices, "
                                                     f"{len(r[1].faces)} faces)")
    return job


def _report(viz, job: Job, describe) -> None:
    if job.error:
        viz.state.notify(f"{job.name} failed: {job.error}", "error")
    elif job.cancelled:
        viz.state.notify(f"{job.name}: cancelled (nothing written)")
    else:
        viz.state.notify(describe(job.result))
