"""An image in the terminal: textual-image's widget where the terminal can draw one.

Kitty or Sixel graphics where the terminal answered for them at start-up, Unicode half-blocks
elsewhere (inside tmux); a plain note where the terminal could not be asked at all. The dataset
preview and the Try screen both show images through this.
"""

from __future__ import annotations

from pathlib import Path

from textual.widget import Widget
from textual.widgets import Static

# Whether textual-image loaded when the app started; asking again once Textual owns the
# terminal would steal its input.
_images_drawable = False


def picture_widget(widget_id: str) -> Widget:
    """textual-image's widget, chosen for this terminal when the app started (a plain note
    where the terminal could not be asked)."""
    if not _images_drawable:
        return Static("(images are not drawn in this terminal)", id=widget_id)
    from textual_image.widget import Image

    widget: Widget = Image(id=widget_id)
    return widget


def show_picture(widget: Widget, picture: str | Path | None) -> None:
    """Draw `picture` in a widget from `picture_widget` (hidden when there is none)."""
    if hasattr(widget, "image"):
        widget.image = picture
    widget.display = picture is not None or not hasattr(widget, "image")


def detect_image_support() -> None:
    """Ask the terminal what graphics it draws: before Textual owns the terminal, never after.

    A terminal that reports no size (a bare pseudo-terminal) or answers oddly makes
    textual-image's import fail: images are then not drawn, and the app still starts.
    """
    global _images_drawable
    try:
        import textual_image.widget  # noqa: F401  # its import queries the terminal, once
    except Exception:
        _images_drawable = False
    else:
        _images_drawable = True
