"""The control panels: one immediate-mode widget class per file.

Each widget is a ``Panel``: a ``title``, whether it starts expanded, and ``draw()``, called every UI
frame while it is expanded. It reads and writes the typed app state (``viz.state``) and calls the
app's actions, never another widget.
"""

from __future__ import annotations


class Panel:
    """Base of the panels (immediate mode: ``draw`` runs every frame the panel is expanded)."""

    title = ""
    """Header text (also how session scripts name the panel)."""
    open_by_default = True
    """Expanded when the app starts."""

    def __init__(self, viz):
        self.viz = viz

    def __call__(self, expanded: bool) -> None:
        if expanded:
            self.draw()

    def draw(self) -> None:
        raise NotImplementedError


def build_widgets(viz) -> list:
    """The panels in the order they appear."""
    from widgets.camera_widget import CameraWidget
    from widgets.capture_widget import CaptureWidget
    from widgets.latent_widget import LatentWidget
    from widgets.model_widget import ModelWidget
    from widgets.performance_widget import PerformanceWidget
    from widgets.quality_widget import QualityWidget
    from widgets.render_mode_widget import RenderModeWidget
    from widgets.truncation_widget import TruncationWidget

    return [ModelWidget(viz), LatentWidget(viz), TruncationWidget(viz), CameraWidget(viz), RenderModeWidget(viz),
            QualityWidget(viz), CaptureWidget(viz), PerformanceWidget(viz)]
