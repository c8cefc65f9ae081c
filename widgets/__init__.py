"""The control panels: one immediate-mode widget class per file.

Each widget is a ``Panel`` (``widgets/panel.py``): a ``title``, whether it starts expanded, and
``draw()``, called every UI frame while it is expanded. It reads and writes the typed app state
(``viz.state``) and calls the app's actions, never another widget.
"""

from __future__ import annotations

from widgets.panel import Panel

__all__ = ["Panel", "build_widgets"]


def build_widgets(viz) -> list:
    """The panels in the order they appear."""
    from widgets.camera_widget import CameraWidget
    from widgets.capture_widget import CaptureWidget
    from widgets.latent_widget import LatentWidget
    from widgets.model_widget import ModelWidget
    from widgets.performance_widget import PerformanceWidget
    from widgets.quality_widget import QualityWidget
    from widgets.render_mode_widget import RenderModeWidget
    from widgets.scene_widget import SceneWidget
    from widgets.truncation_widget import TruncationWidget

    return [ModelWidget(viz), LatentWidget(viz), TruncationWidget(viz), CameraWidget(viz), SceneWidget(viz),
            RenderModeWidget(viz),
            QualityWidget(viz), CaptureWidget(viz), PerformanceWidget(viz)]
