"""A small imgui file browser for checkpoints and run directories (used by the model panel)."""

from __future__ import annotations

import os
from pathlib import Path

import imgui

from renderers.model_source import SNAPSHOT_PATTERN


def is_run_dir(path: Path) -> bool:
    """A folder holding at least one generator snapshot."""
    try:
        return any(SNAPSHOT_PATTERN.match(name) for name in os.listdir(path))
    except OSError:
        return False


class FileBrowser:
    """Modal popup listing folders and openable files; ``draw()`` returns the chosen path once."""

    POPUP = "Open checkpoint or run"

    def __init__(self, suffixes: tuple[str, ...] = (".safetensors", ".pkl")):
        self.suffixes = suffixes
        self.folder = Path.cwd()
        self.error: str | None = None

    def open(self, start: str | None = None) -> None:
        if start:
            p = Path(start).expanduser()
            self.folder = p if p.is_dir() else p.parent if p.parent.is_dir() else self.folder
        imgui.open_popup(self.POPUP)

    def entries(self) -> list[tuple[str, Path, str]]:
        """(label, path, kind) for the current folder: parent, run folders, folders, files."""
        try:
            items = sorted(self.folder.iterdir(), key=lambda p: (not p.is_dir(), p.name.lower()))
            self.error = None
        except OSError as e:
            self.error = f"{self.folder}: {e.strerror or e}"
            items = []
        out = [("..", self.folder.parent, "dir")]
        for p in items:
            if p.name.startswith("."):
                continue
            if p.is_dir():
                out.append((p.name + "/", p, "run" if is_run_dir(p) else "dir"))
            elif p.suffix in self.suffixes:
                out.append((p.name, p, "file"))
        return out

    def draw(self) -> str | None:
        chosen = None
        imgui.set_next_window_size(560, 420, imgui.FIRST_USE_EVER)
        if imgui.begin_popup_modal(self.POPUP)[0]:
            imgui.text(str(self.folder))
            if self.error:
                imgui.text_colored(self.error, 1.0, 0.4, 0.4)
            imgui.begin_child("entries", 0, -32, border=True)
            for label, path, kind in self.entries():
                shown = f"[run] {label}" if kind == "run" else label
                clicked, _ = imgui.selectable(shown, False, imgui.SELECTABLE_ALLOW_DOUBLE_CLICK)
                if clicked:
                    if kind == "dir":
                        self.folder = path.resolve()
                    else:
                        chosen = str(path)
            imgui.end_child()
            if imgui.button("Cancel") or chosen:
                imgui.close_current_popup()
            imgui.same_line()
            imgui.text("Folders marked [run] are followed as training runs.")
            imgui.end_popup()
        return chosen
