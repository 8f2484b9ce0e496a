"""Tray icon images per status, drawn with Pillow (crisp at every size pystray scales them to)."""

from __future__ import annotations

from PIL import Image, ImageDraw

COLOURS = {
    "available": (46, 160, 67), "away": (230, 170, 20), "dnd": (215, 45, 45), "busy": (140, 60, 200),
    "offline": (140, 140, 140), "disconnected": (110, 110, 110),
}


def image(status: str, size: int = 64) -> Image.Image:
    """A filled circle in the status colour; DND has a white bar, disconnected a cross."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    pad = size // 16
    draw.ellipse((pad, pad, size - pad, size - pad), fill=COLOURS[status], outline=(255, 255, 255), width=max(1, size // 32))
    if status == "dnd":
        draw.rectangle((size * 0.25, size * 0.44, size * 0.75, size * 0.56), fill=(255, 255, 255))
    elif status == "disconnected":
        w = max(2, size // 10)
        draw.line((size * 0.3, size * 0.3, size * 0.7, size * 0.7), fill=(255, 255, 255), width=w)
        draw.line((size * 0.7, size * 0.3, size * 0.3, size * 0.7), fill=(255, 255, 255), width=w)
    elif status == "away":
        draw.line((size * 0.5, size * 0.25, size * 0.5, size * 0.52), fill=(255, 255, 255), width=max(2, size // 12))
        draw.line((size * 0.5, size * 0.52, size * 0.68, size * 0.64), fill=(255, 255, 255), width=max(2, size // 12))
    return img
