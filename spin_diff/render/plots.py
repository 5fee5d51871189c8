"""Line charts drawn with numpy and OpenCV (matplotlib is not a dependency).

:func:`line_chart` draws one panel (title, labelled axes with round-number ticks, one
polyline per :class:`Series`, a legend); :func:`~spin_diff.render.views.image_grid` tiles
panels. Images are ``(H, W, 3)`` uint8 RGB, as :func:`~spin_diff.render.save_png` writes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from spin_diff.errors import BadInputError

__all__ = ["PALETTE", "Series", "line_chart", "nice_ticks"]

# Distinguishable on white and for the common colour-vision deficiencies (Okabe-Ito).
PALETTE = ((0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167), (230, 159, 0), (86, 180, 233))
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_INK = (40, 40, 40)
_GRID = (225, 225, 225)


@dataclass
class Series:
    """One line: ``y`` against ``x`` (NaN values leave gaps); ``markers`` draws its points;
    ``line=False`` draws the points only (values measured at a few steps, nothing between)."""

    label: str
    x: np.ndarray
    y: np.ndarray
    color: tuple[int, int, int] | None = None  # RGB; None: the palette's next colour
    markers: bool = False
    line: bool = True


def nice_ticks(low: float, high: float, count: int = 5) -> np.ndarray:
    """About ``count`` round tick values (1, 2 or 5 times a power of ten apart) covering
    ``[low, high]``."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise BadInputError(f"tick range must be finite, got [{low}, {high}]")
    if high <= low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(count - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step + 1e-9) * step
    last = math.ceil(high / step - 1e-9) * step
    return np.arange(round((last - first) / step) + 1) * step + first


def _tick_label(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    if abs(value) >= 1e5 or (value != 0 and abs(value) < 1e-3):
        return f"{value:.1e}"
    return f"{value:.{decimals}f}"


def _text(image, text: str, origin: tuple[int, int], scale: float = 0.42, color=_INK, thickness: int = 1) -> None:
    cv2.putText(image, text, origin, _FONT, scale, color, thickness, cv2.LINE_AA)


def _text_size(text: str, scale: float = 0.42, thickness: int = 1) -> tuple[int, int]:
    (width, height), _ = cv2.getTextSize(text, _FONT, scale, thickness)
    return width, height


def _vertical_text(image, text: str, centre: tuple[int, int], scale: float = 0.42) -> None:
    """``text`` rotated a quarter turn anticlockwise, centred at ``centre`` (x, y)."""
    width, height = _text_size(text, scale)
    patch = np.full((height + 8, width + 4, 3), 255, np.uint8)
    _text(patch, text, (2, height + 3), scale)
    patch = np.ascontiguousarray(np.rot90(patch))
    top = max(0, centre[1] - patch.shape[0] // 2)
    left = max(0, centre[0] - patch.shape[1] // 2)
    region = image[top : top + patch.shape[0], left : left + patch.shape[1]]
    np.minimum(region, patch[: region.shape[0], : region.shape[1]], out=region)


def line_chart(
    series: list[Series],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    size: tuple[int, int] = (520, 340),
    legend: str = "upper right",
    xlim: tuple[float, float] | None = None,
) -> np.ndarray:
    """One chart panel, ``size`` = (width, height) pixels; returns an RGB uint8 image.

    Axes span the finite values of every series (padded to round ticks); a series with no
    finite value is listed in the legend as "(no data)". ``legend``: "upper right",
    "lower right", "upper left" or "lower left" corner of the plotting area. ``xlim``: the
    x range to cover (widened to round ticks), e.g. to align the panels of one figure.
    """
    if not series:
        raise BadInputError("line_chart needs at least one series")
    width, height = size
    image = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 68, 14, 30, 46
    x0, x1, y0, y1 = left, width - right, top, height - bottom  # plotting area (y0 at the top)

    points = []
    for s in series:
        x, y = np.asarray(s.x, dtype=np.float64).ravel(), np.asarray(s.y, dtype=np.float64).ravel()
        if x.shape != y.shape:
            raise BadInputError(f"series {s.label!r}: x has {x.size} values, y has {y.size}")
        points.append((x, y))
    finite_x = np.concatenate([x[np.isfinite(x) & np.isfinite(y)] for x, y in points])
    finite_y = np.concatenate([y[np.isfinite(x) & np.isfinite(y)] for x, y in points])
    if xlim is not None:
        finite_x = np.concatenate([finite_x, np.asarray(xlim, dtype=np.float64)])
    xs = nice_ticks(*(finite_x.min(), finite_x.max()) if finite_x.size else (0.0, 1.0), count=7)
    labels = [s.label + ("" if np.isfinite(y).any() else " (no data)") for s, (_, y) in zip(series, points)]
    line_height = 16
    box_h = line_height * len(labels) + 8
    low, high = (finite_y.min(), finite_y.max()) if finite_y.size else (0.0, 1.0)
    # room for the legend above (or below) the data, so it never hides a line
    share = min(0.6, (box_h + 14) / (y1 - y0))
    room = (high - low if high > low else abs(high) or 1.0) * share / (1 - share)
    ys = nice_ticks(low, high + room) if "upper" in legend else nice_ticks(low - room, high)

    def to_px(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        px = x0 + (x - xs[0]) / (xs[-1] - xs[0]) * (x1 - x0)
        py = y1 - (y - ys[0]) / (ys[-1] - ys[0]) * (y1 - y0)
        return np.stack([px, py], axis=-1)

    for value in ys:
        py = int(round(to_px(np.array([xs[0]]), np.array([value]))[0, 1]))
        cv2.line(image, (x0, py), (x1, py), _GRID, 1)
        label = _tick_label(value, ys[1] - ys[0])
        tw, th = _text_size(label, 0.38)
        _text(image, label, (x0 - tw - 6, py + th // 2), 0.38)
    for value in xs:
        px = int(round(to_px(np.array([value]), np.array([ys[0]]))[0, 0]))
        cv2.line(image, (px, y0), (px, y1), _GRID, 1)
        cv2.line(image, (px, y1), (px, y1 + 4), _INK, 1)
        label = _tick_label(value, xs[1] - xs[0])
        tw, th = _text_size(label, 0.38)
        _text(image, label, (px - tw // 2, y1 + th + 8), 0.38)
    cv2.rectangle(image, (x0, y0), (x1, y1), _INK, 1)

    colors = []
    for i, (s, (x, y)) in enumerate(zip(series, points)):
        color = tuple(int(c) for c in (s.color or PALETTE[i % len(PALETTE)]))
        colors.append(color)
        ok = np.isfinite(x) & np.isfinite(y)
        pixels = np.round(np.nan_to_num(to_px(x, y)) * 16).astype(np.int32)  # 4 fractional bits: smooth lines
        # consecutive finite points form one polyline; a NaN breaks it
        breaks = np.flatnonzero(~ok)
        for segment in np.split(np.arange(x.size), breaks):
            segment = segment[ok[segment]]
            if segment.size >= 2 and s.line:
                cv2.polylines(image, [pixels[segment]], False, color, 2, cv2.LINE_AA, shift=4)
            if s.markers or not s.line or segment.size == 1:
                for p in pixels[segment]:
                    cv2.circle(image, (int(p[0]), int(p[1])), 4 * 16, color, -1, cv2.LINE_AA, shift=4)

    tw, _ = _text_size(title, 0.5, 1)
    _text(image, title, ((width - tw) // 2, 20), 0.5)
    tw, _ = _text_size(xlabel)
    _text(image, xlabel, ((x0 + x1 - tw) // 2, height - 8))
    _vertical_text(image, ylabel, (12, (y0 + y1) // 2))

    box_w = max(_text_size(t, 0.4)[0] for t in labels) + 38
    bx = x1 - box_w - 6 if "right" in legend else x0 + 6
    by = y0 + 6 if "upper" in legend else y1 - box_h - 6
    cv2.rectangle(image, (bx, by), (bx + box_w, by + box_h), (255, 255, 255), -1)
    cv2.rectangle(image, (bx, by), (bx + box_w, by + box_h), (160, 160, 160), 1)
    for i, (label, color, s) in enumerate(zip(labels, colors, series)):
        cy = by + 4 + line_height * i + line_height // 2
        if s.line:
            cv2.line(image, (bx + 6, cy), (bx + 28, cy), color, 2, cv2.LINE_AA)
        if s.markers or not s.line:
            cv2.circle(image, (bx + 17, cy), 4, color, -1, cv2.LINE_AA)
        _text(image, label, (bx + 33, cy + 5), 0.4)
    return image
