"""glfw start-up: a display that refuses a connection for a moment is retried; one that keeps
refusing gives a WindowError that says what to do."""

from __future__ import annotations

import pytest

from app import window


def test_a_briefly_refusing_display_is_retried(monkeypatch):
    attempts = []
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(window, "DISPLAY_RETRIES", (0.0, 0.0, 0.0))
    monkeypatch.setattr(window.glfw, "init", lambda: attempts.append(1) or len(attempts) >= 3)
    window.init_glfw()
    assert len(attempts) == 3


def test_a_display_that_keeps_refusing_raises_after_the_retries(monkeypatch):
    attempts = []
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(window, "DISPLAY_RETRIES", (0.0, 0.0))
    monkeypatch.setattr(window.glfw, "init", lambda: attempts.append(1) and False)
    monkeypatch.setattr(window.glfw, "get_error", lambda: (65550, b"X11: Failed to open display :99"), raising=False)
    with pytest.raises(window.WindowError, match="glfw could not start .*Failed to open display :99.*xvfb-run"):
        window.init_glfw()
    assert len(attempts) == 3  # the first try and two retries
