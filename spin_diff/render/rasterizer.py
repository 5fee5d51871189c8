"""Z-buffered triangle rasterisation in pure numpy, vectorised over triangles.

Pixel convention (shared with :mod:`spin_diff.render.mesh_renderer`): pixel ``(i, j)`` -- row
``i``, column ``j`` -- covers the screen square ``[j, j + 1) x [i, i + 1)`` and is sampled at its
centre ``(j + 0.5, i + 0.5)``. Screen coordinates are ``(u, v)`` with ``u`` to the right and ``v``
down, as produced by an OpenCV-style pinhole projection.

A pixel belongs to a triangle when its centre is strictly inside, or lies exactly on an edge
that the triangle *owns* under a top-left style rule (the edge's inward normal points to +u, or
to +v for an edge parallel to the u axis). Two triangles sharing an edge own it on opposite sides,
so meshes are rasterised without cracks and without double coverage.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rasterize"]

# Candidate pixels evaluated at once; about 60 bytes of temporaries each, so memory stays bounded
# even when a triangle near the camera covers a whole large image.
_CANDIDATES_PER_CHUNK = 1 << 16

# Row spans are widened by this distance (pixels, perpendicular to each edge) beyond the exact
# edge so float rounding never drops a covered pixel; the exact inside test decides the rest.
_SPAN_MARGIN = 1e-2


def rasterize(
    vertices_px: np.ndarray,
    faces: np.ndarray,
    height: int,
    width: int,
    *,
    near: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rasterise triangles into a depth buffer, a face-index buffer and barycentrics.

    Args:
        vertices_px: ``Vx3`` screen-space vertices ``(u, v, depth)``: pixel coordinates (see the
            module docstring for the pixel convention) and camera-frame depth ``z`` (> 0 in
            front of the camera).
        faces: ``Fx3`` integer vertex indices.
        height, width: image size in pixels.
        near: triangles with any vertex at depth ``<= near`` (or any non-finite coordinate) are
            dropped, not clipped.

    Returns:
        depth: ``HxW`` float32 depth of the nearest surface, ``+inf`` where empty.
        face_index: ``HxW`` int32 index into ``faces`` of the visible triangle, ``-1`` where empty.
        barycentrics: ``HxWx3`` float32 perspective-correct barycentric weights of the visible
            triangle's three vertices (they sum to 1; zero where empty).

    Ties in depth go to the triangle that comes first in ``faces``.
    """
    vertices_px = np.asarray(vertices_px, dtype=np.float64)
    faces = np.asarray(faces)
    height, width = int(height), int(width)
    if vertices_px.ndim != 2 or vertices_px.shape[1] != 3:
        raise ValueError(f"vertices_px must have shape (V, 3), got {vertices_px.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"faces must be an integer array of shape (F, 3), got {faces.dtype} {faces.shape}")
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got height={height}, width={width}")

    depth = np.full(height * width, np.inf, dtype=np.float32)
    face_index = np.full(height * width, -1, dtype=np.int32)
    barycentrics = np.zeros((height * width, 3), dtype=np.float32)

    triangles = _setup_triangles(vertices_px, faces, height, width, near)
    spans = None if triangles is None else _row_spans(triangles)
    if spans is not None:
        for chunk in _candidate_chunks(spans["length"], _CANDIDATES_PER_CHUNK):
            _rasterize_chunk(triangles, spans, *chunk, width, depth, face_index, barycentrics)

    return (
        depth.reshape(height, width),
        face_index.reshape(height, width),
        barycentrics.reshape(height, width, 3),
    )


def _setup_triangles(vertices_px, faces, height, width, near):
    """Per-triangle data: edge functions, perspective weights, row-span bounds, pixel boxes.

    Only triangles that may cover a pixel centre are kept; ``face_id`` maps them back to
    ``faces``. Works on one 1-D array per quantity: numpy is many times slower on a short
    trailing axis (``Fx3``) than elementwise on columns. Returns None when nothing is kept.
    """
    n_vertices = vertices_px.shape[0]
    if faces.shape[0] == 0 or n_vertices == 0:
        return None
    if faces.min() < 0 or faces.max() >= n_vertices:
        raise ValueError(f"faces index vertices outside [0, {n_vertices})")

    # Validity is decided per vertex; invalid vertices are zeroed so no NaN/inf flows further.
    # Coordinates are taken relative to the image centre, which keeps the float32 edge functions
    # below accurate for every edge that crosses the image, even one whose far end projects
    # millions of pixels away (a vertex just in front of the near plane).
    origin = (width / 2.0, height / 2.0)
    screen_u, screen_v, screen_z = (np.ascontiguousarray(vertices_px[:, k]) for k in range(3))
    usable = screen_z > near  # False for NaN
    usable &= np.isfinite(screen_u) & np.isfinite(screen_v) & np.isfinite(screen_z)
    screen_u = np.where(usable, screen_u - origin[0], 0.0)
    screen_v = np.where(usable, screen_v - origin[1], 0.0)
    corner = [np.ascontiguousarray(faces[:, k]) for k in range(3)]
    keep = usable[corner[0]] & usable[corner[1]] & usable[corner[2]]
    u = [screen_u[c] for c in corner]
    v = [screen_v[c] for c in corner]

    # Pixel rows/columns whose centres lie inside the bounding box, clipped to the image (in float
    # first, so vertices projected far away cannot overflow the integer conversion).
    def first_and_count(a, b, c, offset, size):
        low = np.minimum(np.minimum(a, b), c)
        low += offset - 0.5
        high = np.maximum(np.maximum(a, b), c)
        high += offset - 0.5
        first = np.ceil(np.clip(low, 0.0, size)).astype(np.int32)
        count = np.floor(np.clip(high, -1.0, size - 1)).astype(np.int32)
        count -= first
        count += 1
        return first, count

    col_first, n_cols = first_and_count(*u, origin[0], width)
    row_first, n_rows = first_and_count(*v, origin[1], height)
    keep &= n_cols > 0
    keep &= n_rows > 0
    kept = np.flatnonzero(keep)
    if kept.size == 0:
        return None
    u = [a[kept] for a in u]
    v = [a[kept] for a in v]

    # Edge k is opposite corner k and joins corners k+1 and k+2: E(p) = a p_u + b p_v + c with
    # (a, b) = (v_s - v_e, u_e - u_s) and c = u_s v_e - u_e v_s, the cross product of the ends.
    # Swapping the ends negates each of a, b and c exactly in floating point (the products are
    # the same numbers), so two triangles sharing an edge see exactly negated values at every
    # pixel: a pixel centre on the edge is "on the edge" for both, and the ownership rule below
    # gives it to exactly one of them -- no cracks, no double coverage.
    edges = []
    for k in range(3):
        start_u, start_v = u[(k + 1) % 3], v[(k + 1) % 3]
        end_u, end_v = u[(k + 2) % 3], v[(k + 2) % 3]
        a = start_v - end_v
        b = end_u - start_u
        c = start_u * end_v
        c -= end_u * start_v
        # Orient the edge function to be positive inside; its value at the opposite corner
        # then normalises it to a screen-space barycentric coordinate.
        opposite = a * u[k]
        opposite += b * v[k]
        opposite += c
        sign = np.sign(opposite)
        a *= sign
        b *= sign
        c *= sign
        np.abs(opposite, out=opposite)
        edges.append((a, b, c, opposite))

    # Zero-area triangles (in screen space) cover no pixel centre reliably; drop them.
    area_ok = (edges[0][3] > 0) & (edges[1][3] > 0) & (edges[2][3] > 0)
    if area_ok.all():
        area_ok = slice(None)  # the usual case: skip the copies
    else:
        area_ok = np.flatnonzero(area_ok)
        if area_ok.size == 0:
            return None
        kept = kept[area_ok]
    depth = [screen_z[c[kept]] for c in corner]

    # Candidates are evaluated in float32, which halves the memory traffic (and page faults,
    # which dominate in VMs) of float64. The coefficients are rounded once, here, so the exact
    # negation between triangles sharing an edge survives; relative to the image centre, the
    # rounding moves an edge by about 1e-7 of the image size, far below a pixel.
    def f32(values):
        return values[area_ok].astype(np.float32)

    coef_u = [f32(e[0]) for e in edges]
    coef_v = [f32(e[1]) for e in edges]
    coef_1 = [f32(e[2]) for e in edges]

    # Row spans: on the row through v, a u E >= -margin |(a, b)| bounds u from below where a > 0
    # and from above where a < 0, at u = slope v + offset. A triangle has one or two edges of
    # each kind (its a's sum to zero); the first and last of each kind fill two slots (the same
    # edge twice when there is one). NaN marks "no bound" for np.fmax / np.fmin; horizontal
    # edges (a = 0) only bound rows, which the bounding box already does. The bounds come from
    # the float32 coefficients that the inside test uses; their float32 rounding is a small
    # fraction of the margin for coordinates within 1e4 px of the image centre.
    lines = []
    for a, b, c in zip(coef_u, coef_v, coef_1):
        with np.errstate(divide="ignore", invalid="ignore"):
            inverse = np.divide(-1.0, a, dtype=np.float32)
            slope = b * inverse
            offset = a * a
            offset += b * b
            np.sqrt(offset, out=offset)
            offset *= _SPAN_MARGIN
            offset += c
            offset *= inverse
        lines.append((a, slope, offset))

    def slots(role):
        is_role = [role(a) for a, _, _ in lines]
        bounds = [(np.where(m, s, np.nan), np.where(m, o, np.nan)) for m, (_, s, o) in zip(is_role, lines)]
        first = [np.where(is_role[0], b0, np.where(is_role[1], b1, b2)) for b0, b1, b2 in zip(*bounds)]
        last = [np.where(is_role[2], b2, np.where(is_role[1], b1, b0)) for b0, b1, b2 in zip(*bounds)]
        return [tuple(first), tuple(last)]

    return {
        "origin": origin,
        "face_id": kept.astype(np.int32),
        "coef_u": coef_u,
        "coef_v": coef_v,
        "coef_1": coef_1,
        # Owned edges: the inward normal points to +u, or to +v for an edge parallel to u.
        "owned": [(a > 0) | ((a == 0) & (b > 0)) for a, b in zip(coef_u, coef_v)],
        # Screen barycentric -> perspective weight: lambda_k / z_k = E_k / (E_k(corner_k) z_k).
        "weight_scale": [(1.0 / (edges[k][3][area_ok] * depth[k])).astype(np.float32) for k in range(3)],
        "lower": slots(lambda a: a > 0),
        "upper": slots(lambda a: a < 0),
        "col_first": col_first[kept],
        "col_last": col_first[kept] + n_cols[kept] - 1,
        "row_first": row_first[kept],
        "n_rows": n_rows[kept],
    }


def _row_spans(triangles):
    """Per (triangle, pixel row) pair: the columns whose centres may lie inside the triangle.

    Returns a dict of equally long 1-D arrays ``tri``, ``row``, ``col_first``, ``length`` (spans
    of length 0 removed), or None when no span is left. Bounding the columns per row, rather
    than testing the whole bounding box, halves the candidates of large triangles.
    """
    n_rows = triangles["n_rows"]
    span_tri = np.repeat(np.arange(n_rows.size, dtype=np.int32), n_rows)
    first_span = np.cumsum(n_rows) - n_rows
    span_row = np.arange(span_tri.size, dtype=np.int32)
    span_row += np.repeat((triangles["row_first"] - first_span).astype(np.int32), n_rows)

    centre_v = np.add(span_row, 0.5 - triangles["origin"][1], dtype=np.float32)
    low = np.full(span_tri.size, -np.inf, dtype=np.float32)
    high = np.full(span_tri.size, np.inf, dtype=np.float32)
    bound = np.empty(span_tri.size, dtype=np.float32)
    for (slope, offset), limit, combine in [(slot, low, np.fmax) for slot in triangles["lower"]] + [
        (slot, high, np.fmin) for slot in triangles["upper"]
    ]:
        np.take(slope, span_tri, out=bound)
        bound *= centre_v
        bound += np.take(offset, span_tri)
        combine(limit, bound, out=limit)

    # Columns j with low <= j + 0.5 - origin_u <= high, within the bounding box.
    col_first = np.take(triangles["col_first"], span_tri)
    col_last = np.take(triangles["col_last"], span_tri)
    shift = np.float32(triangles["origin"][0] - 0.5)
    low += shift
    np.clip(low, col_first, col_last + 1, out=low)
    high += shift
    np.clip(high, col_first - 1, col_last, out=high)
    first = np.ceil(low).astype(np.int32)
    length = np.floor(high).astype(np.int64)
    length -= first
    length += 1

    keep = np.flatnonzero(length > 0)
    if keep.size == 0:
        return None
    return {"tri": span_tri[keep], "row": span_row[keep], "col_first": first[keep], "length": length[keep]}


def _candidate_chunks(counts, budget):
    """Split the concatenated candidate pixels of all spans into ranges of ``budget``.

    Yields ``(first, stop, skip_first, take_last)``: spans ``first:stop`` take part, the first
    one's initial ``skip_first`` candidates were handled by the previous chunk, and only
    ``take_last`` candidates of the last span belong to this chunk.
    """
    ends = np.cumsum(counts)
    total = int(ends[-1])
    for begin in range(0, total, budget):
        stop = min(begin + budget, total)
        first = int(np.searchsorted(ends, begin, side="right"))
        last = int(np.searchsorted(ends, stop - 1, side="right"))
        skip_first = begin - (int(ends[first - 1]) if first > 0 else 0)
        take_last = stop - (int(ends[last - 1]) if last > 0 else 0)
        yield first, last + 1, skip_first, take_last


def _rasterize_chunk(triangles, spans, first, stop, skip_first, take_last, width, depth, face_index, barycentrics):
    """Test one chunk of candidate pixels and merge its nearest hits into the buffers."""
    counts = spans["length"][first:stop].copy()
    counts[-1] = take_last
    counts[0] -= skip_first  # after the line above: a chunk inside one span needs both
    n_candidates = int(counts.sum())

    tri = np.repeat(spans["tri"][first:stop], counts)
    row = np.repeat(spans["row"][first:stop], counts)
    # Column = position in the chunk - where the span starts in it + the span's first column.
    col_shift = (spans["col_first"][first:stop] - (np.cumsum(counts) - counts)).astype(np.int32)
    col_shift[0] += skip_first
    col = np.arange(n_candidates, dtype=np.int32)
    col += np.repeat(col_shift, counts)

    # Pixel centres relative to the image centre, as in the setup (exact in float32).
    centre_u = np.add(col, 0.5 - triangles["origin"][0], dtype=np.float32)
    centre_v = np.add(row, 0.5 - triangles["origin"][1], dtype=np.float32)
    scratch = np.empty(n_candidates, dtype=np.float32)
    edge_values = []
    inside = None
    for k in range(3):
        # Same operation order for every triangle, so shared edges give exactly negated values.
        value = np.take(triangles["coef_u"][k], tri)
        value *= centre_u
        value += np.multiply(np.take(triangles["coef_v"][k], tri, out=scratch), centre_v, out=scratch)
        value += np.take(triangles["coef_1"][k], tri, out=scratch)
        edge_values.append(value)
        # Inside, or exactly on an edge this triangle owns (top-left style rule).
        test = value > 0
        on_edge = value == 0
        if on_edge.any():
            test |= on_edge & np.take(triangles["owned"][k], tri)
        inside = test if inside is None else np.logical_and(inside, test, out=inside)
    del scratch, centre_u, centre_v
    hit = np.flatnonzero(inside)
    if hit.size == 0:
        return

    tri = tri[hit]
    pixel = row[hit].astype(np.int64)
    pixel *= width
    pixel += col[hit]
    weights = []
    for k in range(3):
        weight = edge_values[k][hit]
        weight *= np.take(triangles["weight_scale"][k], tri)
        weights.append(weight)
    inverse_depth = weights[0] + weights[1] + weights[2]
    hit_depth = np.divide(1.0, inverse_depth, dtype=np.float32)

    # Z-buffer: the nearest hit per pixel wins, ties go to the lowest face index. Chunks come in
    # face order, so "lowest face index" also settles ties with hits of earlier chunks.
    face_id = np.take(triangles["face_id"], tri)
    depth_before = depth[pixel]
    np.minimum.at(depth, pixel, hit_depth)
    nearest = np.flatnonzero(hit_depth == depth[pixel])
    pixel, face_id = pixel[nearest], face_id[nearest]
    improved = hit_depth[nearest] < depth_before[nearest]
    face_index[pixel[improved]] = np.iinfo(np.int32).max  # forget faces of earlier, farther hits
    np.minimum.at(face_index, pixel, face_id)
    winner = np.flatnonzero(face_index[pixel] == face_id)  # one per pixel: a face hits it once
    pixel, nearest = pixel[winner], nearest[winner]
    norm = 1.0 / inverse_depth[nearest]
    for k in range(3):
        barycentrics[pixel, k] = weights[k][nearest] * norm


