"""Line charts drawn with numpy + OpenCV."""

import math

import numpy as np
import pytest

from spin_diff.errors import BadInputError
from spin_diff.render.plots import Series, line_chart, nice_ticks


@pytest.mark.parametrize("low, high", [(0.0, 48.0), (0.013, 0.027), (-3.2, 7.9), (140.0, 141.0), (5.0, 5.0)])
def test_ticks_are_round_and_cover_the_range(low, high):
    ticks = nice_ticks(low, high)
    step = ticks[1] - ticks[0]
    assert ticks[0] <= low and ticks[-1] >= high and 3 <= len(ticks) <= 9
    np.testing.assert_allclose(np.diff(ticks), step, rtol=1e-9)
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-6
    assert np.allclose(ticks / step, np.round(ticks / step))


def _pixels(image, color):
    return np.argwhere(np.abs(image.astype(int) - color).sum(-1) < 20)


def test_a_line_is_drawn_where_its_values_are():
    red, blue = (230, 20, 20), (20, 20, 230)
    x = np.arange(11.0)
    image = line_chart(
        [Series("rising", x, x, color=red), Series("flat", x, np.full(11, 5.0), color=blue)],
        title="t", xlabel="step", ylabel="value", size=(400, 300), legend="lower right",
    )  # fmt: skip
    assert image.shape == (300, 400, 3) and image.dtype == np.uint8
    rising, flat = _pixels(image, red), _pixels(image, blue)
    rising, flat = rising[rising[:, 1] < 280], flat[flat[:, 1] < 280]  # the legend box lies at the right
    # the flat line is one horizontal band; the rising line goes up (row falls) to the right
    assert np.ptp(flat[:, 0]) <= 3
    slope = np.polyfit(rising[:, 1], rising[:, 0], 1)[0]
    assert slope < -0.3
    # they cross at x = 5, the middle of the x axis (ticks 0..10; plotting area 68..386 px)
    a, b = np.polyfit(rising[:, 1], rising[:, 0], 1)
    crossing = (np.median(flat[:, 0]) - b) / a
    assert abs(crossing - (68 + 386) / 2) < 4


def test_nan_leaves_a_gap_and_an_empty_series_is_allowed():
    red = (230, 20, 20)
    y = np.array([1.0, 1.0, np.nan, np.nan, np.nan, 1.0, 1.0])
    image = line_chart([Series("gappy", np.arange(7.0), y, color=red), Series("empty", [], [])],
                       title="t", xlabel="x", ylabel="y", size=(400, 300), legend="lower left")  # fmt: skip
    columns = np.unique(_pixels(image, red)[:, 1])
    gaps = np.diff(columns)
    assert gaps.max() > 80  # nothing drawn across the three missing points


def test_bad_series_are_refused():
    with pytest.raises(BadInputError, match="x has 3 values, y has 2"):
        line_chart([Series("s", [1, 2, 3], [1, 2])], title="t", xlabel="x", ylabel="y")
    with pytest.raises(BadInputError):
        line_chart([], title="t", xlabel="x", ylabel="y")


def test_points_only_series_draw_no_line_between_points():
    red = (230, 20, 20)
    image = line_chart([Series("b", [0.0, 10.0], [1.0, 2.0], color=red, line=False)],
                       title="t", xlabel="x", ylabel="y", size=(400, 300), legend="upper left")  # fmt: skip
    columns = _pixels(image, red)[:, 1]
    # dots at both ends of the x axis (68 and 386 px), the legend's dot near the left, nothing between
    assert (columns < 75).any() and (columns > 380).any()
    assert not ((columns > 150) & (columns < 370)).any()
