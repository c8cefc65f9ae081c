"""The base class of the control panels (see the ``widgets`` package docstring)."""

from __future__ import annotations


class Panel:
    """Base of the panels (immediate mode: ``draw`` runs every frame the panel is expanded)."""

    title = ""
    """Header text (also how session scripts name the panel)."""
    open_by_default = True
    """Expanded when the app starts."""

    def __init__(self, viz):
        self.viz = viz

    def shown(self) -> bool:
        """Whether the panel is listed at all (some only apply to some models)."""
        return True

    def __call__(self, expanded: bool) -> None:
        if expanded:
            self.draw()

    def draw(self) -> None:
        raise NotImplementedError
