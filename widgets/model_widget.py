"""Model panel: path, browse, recent files, run-following status."""

from __future__ import annotations

import imgui

from widgets.file_browser import FileBrowser
from widgets.panel import Panel


class ModelWidget(Panel):
    title = "Model"
    open_by_default = True

    def __init__(self, viz):
        super().__init__(viz)
        self.path_text = ""
        self.browser = FileBrowser()

    def draw(self) -> None:
        model = self.viz.state.model
        imgui.text_wrapped(model.label)
        if model.loading:
            imgui.text_colored(f"loading {model.loading} ...", 1.0, 0.85, 0.3)
        if model.error:
            imgui.text_colored("error:", 1.0, 0.4, 0.4)
            imgui.same_line()
            imgui.text_wrapped(model.error)
        imgui.push_item_width(-110)
        changed, self.path_text = imgui.input_text("##path", self.path_text, 1024,
                                                   imgui.INPUT_TEXT_ENTER_RETURNS_TRUE)
        imgui.pop_item_width()
        imgui.same_line()
        if imgui.button("Open") or changed:
            self.viz.load(self.path_text.strip())
        imgui.same_line()
        if imgui.button("Browse"):
            self.browser.open(self.path_text or model.path)
        chosen = self.browser.draw()
        if chosen:
            self.path_text = chosen
            self.viz.load(chosen)
        if model.recent:
            imgui.push_item_width(-1)
            clicked, index = imgui.combo("##recent", 0, ["recent ..."] + model.recent)
            imgui.pop_item_width()
            if clicked and index > 0:
                self.path_text = model.recent[index - 1]
                self.viz.load(self.path_text)
        if model.release:
            imgui.text("release settings:")
            imgui.same_line()
            choices = list(model.release_choices) or [model.release]
            current = choices.index(model.release) if model.release in choices else 0
            imgui.push_item_width(-1)
            clicked, index = imgui.combo("##release", current, choices)
            imgui.pop_item_width()
            if clicked and choices[index] != model.release:  # reopen the file with that release's settings
                self.viz.load(model.path, release=choices[index])
        if model.run_dir:
            _, model.follow = imgui.checkbox("follow run (reload new snapshots)", model.follow)
            newest = f"{model.newest_kimg:g}" if model.newest_kimg is not None else "?"
            imgui.text(f"showing {model.snapshot_kimg:g} kimg, newest {newest} kimg")
        imgui.text_disabled(f"{model.image_resolution}px, neural {model.neural_resolution}px, {model.num_ws} ws; "
                            "drop a file on the window to open it")
