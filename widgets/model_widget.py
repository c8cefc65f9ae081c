"""Model panel: path, browse, recent files, the bundled models, run-following status."""

from __future__ import annotations

import imgui

from widgets.controls import button_width, label_space, note, tooltip
from widgets.file_browser import FileBrowser
from widgets.panel import Panel


class ModelWidget(Panel):
    title = "Model"
    open_by_default = True

    def __init__(self, viz):
        super().__init__(viz)
        self.path_text = ""
        self.browser = FileBrowser()
        self._snapshots: list[float] = []
        self._listed_at = -1e9
        self._listed_dir: str | None = None
        self._bundled: list = []
        self._bundled_at = -1e9

    def draw(self) -> None:
        model = self.viz.state.model
        imgui.text_wrapped(model.label)
        if model.path:
            note(model.path)
        if model.loading:
            imgui.text_colored(f"loading {model.loading} ...", 1.0, 0.85, 0.3)
        if model.error:
            imgui.text_colored("error:", 1.0, 0.4, 0.4)
            imgui.same_line()
            imgui.text_wrapped(model.error)
        spacing = imgui.get_style().item_spacing.x
        imgui.push_item_width(-(button_width("Open") + button_width("Browse") + 2 * spacing))
        changed, self.path_text = imgui.input_text("##path", self.path_text, 1024,
                                                   imgui.INPUT_TEXT_ENTER_RETURNS_TRUE)
        imgui.pop_item_width()
        tooltip("A checkpoint (.safetensors or EG3D .pkl), a training run folder (followed: newer snapshots "
                "load as they appear), or preset:NAME for random weights. Enter opens it; empty: the bundled model.")
        imgui.same_line()
        if imgui.button("Open") or changed:
            self.viz.load(self.path_text.strip())
        tooltip("Open the path on the left (you can also drop a file on the window).")
        imgui.same_line()
        if imgui.button("Browse"):
            self.browser.open(self.path_text or model.path)
        tooltip("Pick a checkpoint or run folder in a file browser.")
        chosen = self.browser.draw()
        if chosen:
            self.path_text = chosen
            self.viz.load(chosen)
        if model.recent:
            imgui.push_item_width(-1)
            clicked, index = imgui.combo("##recent", 0, ["recent ..."] + model.recent)
            imgui.pop_item_width()
            tooltip("Recently opened files and runs (remembered across restarts).")
            if clicked and index > 0:
                self.path_text = model.recent[index - 1]
                self.viz.load(self.path_text)
        self._bundled_list()
        if model.release:
            imgui.text("release settings:")
            tooltip("Official releases whose files look the same but render with different settings (camera, "
                    "ray range); pick the one this file came from.")
            choices = list(model.release_choices) or [model.release]
            current = choices.index(model.release) if model.release in choices else 0
            imgui.push_item_width(-1)
            clicked, index = imgui.combo("##release", current, choices)
            imgui.pop_item_width()
            tooltip("The release whose render settings are used; changing it reopens the file.")
            if clicked and choices[index] != model.release:  # reopen the file with that release's settings
                self.viz.load(model.path, release=choices[index])
        if model.run_dir:
            _, model.follow = imgui.checkbox("follow run (reload new snapshots)", model.follow)
            tooltip("Watch the run folder and load each newer snapshot about 2 s after training writes it.")
            self._snapshot_list(model)
            newest = f"{model.newest_kimg:g}" if model.newest_kimg is not None else "?"
            imgui.push_text_wrap_pos(0.0)
            imgui.text(f"showing {model.snapshot_kimg:g} kimg, newest {newest} kimg")
            imgui.pop_text_wrap_pos()
        if model.method:
            note(f"method: {model.method}" + (f", {model.snapshot_kimg:g} kimg" if model.snapshot_kimg is not None
                                              else ""))
        note(f"{model.image_resolution}px, neural {model.neural_resolution}px, {model.num_ws} ws; "
             "drop a file on the window to open it")

    def _bundled_list(self) -> None:
        """A combo of the bundled zoo models (one per method); choosing one opens it."""
        import time

        from renderers.model_source import bundled_models

        if time.monotonic() - self._bundled_at > 5.0:  # a few small header reads, not every frame
            self._bundled_at, self._bundled = time.monotonic(), bundled_models()
        if not self._bundled:
            return
        imgui.push_item_width(-1)
        clicked, index = imgui.combo("##bundled", 0, ["bundled models ..."] + [m.label for m in self._bundled])
        imgui.pop_item_width()
        tooltip("Models shipped with the app, one per method, each trained with train.py on 2 CPU cores on the "
                "synthetic heads (SWD at initialisation -> at the end; lower is better). Their training commands "
                "and geometry figures are in each file's metadata and the README's model zoo table.")
        if clicked and index > 0:
            self.path_text = str(self._bundled[index - 1].path)
            self.viz.load(self.path_text)

    def _snapshot_list(self, model) -> None:
        """A combo of the run's snapshots, newest first: choosing one opens it (and stops following)."""
        import time
        from pathlib import Path

        from renderers.model_source import list_snapshots

        now = time.monotonic()
        if now - self._listed_at > 2.0 or self._listed_dir != model.run_dir:  # don't list the folder every frame
            self._listed_at, self._listed_dir = now, model.run_dir
            self._snapshots = [kimg for kimg, _ in list_snapshots(Path(model.run_dir))]
        if not self._snapshots:
            return
        labels = [f"{kimg:g} kimg" for kimg in self._snapshots]
        current = self._snapshots.index(model.snapshot_kimg) if model.snapshot_kimg in self._snapshots else 0
        imgui.push_item_width(label_space("snapshot"))
        clicked, index = imgui.combo("snapshot", current, labels)
        imgui.pop_item_width()
        tooltip("Every snapshot of the run, newest first. Choosing an older one opens it and stops following "
                "(tick 'follow run' to go back to the newest).")
        if clicked and index != current:
            self.viz.open_snapshot(self._snapshots[index])
