"""Icon maker: draws the demo site's Home Screen icons (a white N on the brand colour) as PNGs.

Run once after changing the design: `python tools/make_icons.py` (standard library only).
Publishers replace service/static/icons/ with their own artwork of the same sizes."""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "service" / "static" / "icons"
BRAND = (0x7A, 0x00, 0x19)
WHITE = (0xFF, 0xFF, 0xFF)


def inside_n(x: float, y: float) -> bool:
    """The letter N in a unit box (0..1 both ways)."""
    stem = 0.2
    if not 0.0 <= y <= 1.0:
        return False
    if 0.0 <= x <= stem or 1.0 - stem <= x <= 1.0:
        return True
    # The diagonal: from the top of the left stem to the bottom of the right one.
    centre = y * (1.0 - stem) + stem / 2
    return abs(x - centre) <= stem / 2 + 0.02 and stem / 2 <= x <= 1.0 - stem / 2


def draw(size: int, glyph_share: float, rounded: bool) -> bytes:
    """RGBA rows; the glyph spans glyph_share of the icon, centred (maskable: inside the safe zone)."""
    glyph = size * glyph_share
    origin = (size - glyph) / 2
    radius = size * 0.18 if rounded else 0.0
    rows = bytearray()
    for py in range(size):
        rows.append(0)  # PNG filter: none
        for px in range(size):
            cx, cy = px + 0.5, py + 0.5
            dx = max(radius - cx, cx - (size - radius), 0.0)
            dy = max(radius - cy, cy - (size - radius), 0.0)
            if radius and dx * dx + dy * dy > radius * radius:
                rows += b"\0\0\0\0"
                continue
            on = inside_n((cx - origin) / glyph, (cy - origin) / glyph)
            rows += bytes(WHITE if on else BRAND) + b"\xff"
    return bytes(rows)


def png(size: int, rgba_rows: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rgba_rows, 9))
        + chunk(b"IEND", b"")
    )


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    icons = {
        "icon-192.png": (192, 0.5, True),
        "icon-512.png": (512, 0.5, True),
        # Maskable: full bleed, the glyph well inside the 80 % safe circle.
        "icon-maskable-512.png": (512, 0.4, False),
        # iOS ignores the manifest's icons for the Home Screen and uses this one.
        "apple-touch-icon.png": (180, 0.5, False),
    }
    for name, (size, share, rounded) in icons.items():
        (OUT / name).write_bytes(png(size, draw(size, share, rounded)))
        print(OUT / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
