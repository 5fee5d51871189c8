"""Pixel-level checks of the numpy rasteriser and mesh renderer on procedural meshes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from spin_diff.render import (
    RenderResult,
    look_at_translation,
    orbit_rotation,
    part_colors,
    rasterize,
    render_mesh,
    save_png,
)

FOCAL = 5000.0
FLIP = np.diag([1.0, -1.0, -1.0])


def uv_sphere(n_rings: int = 24, n_segments: int = 48, radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Closed UV sphere (y-up) with consistently wound triangles."""
    polar = np.linspace(0.0, np.pi, n_rings + 1)[1:-1]
    azimuth = np.linspace(0.0, 2.0 * np.pi, n_segments, endpoint=False)
    polar, azimuth = np.meshgrid(polar, azimuth, indexing="ij")
    ring = np.stack([np.sin(polar) * np.cos(azimuth), np.cos(polar), np.sin(polar) * np.sin(azimuth)], axis=-1)
    vertices = np.concatenate([[[0.0, 1.0, 0.0]], ring.reshape(-1, 3), [[0.0, -1.0, 0.0]]]) * radius
    bottom = len(vertices) - 1

    def index(r, s):
        return 1 + r * n_segments + s % n_segments

    faces = []
    for s in range(n_segments):
        faces.append((0, index(0, s + 1), index(0, s)))
        faces.append((bottom, index(n_rings - 2, s), index(n_rings - 2, s + 1)))
        for r in range(n_rings - 2):
            faces.append((index(r, s), index(r, s + 1), index(r + 1, s + 1)))
            faces.append((index(r, s), index(r + 1, s + 1), index(r + 1, s)))
    return vertices, np.asarray(faces)


def quad(x0, y0, x1, y1, z) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned rectangle at depth z (camera frame), two triangles."""
    vertices = np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=float)
    return vertices, np.array([[0, 1, 2], [0, 2, 3]])


def project(points: np.ndarray, size: int, focal: float = FOCAL) -> np.ndarray:
    """(u, v) of camera-frame points with the principal point at the image centre."""
    return focal * points[:, :2] / points[:, 2:3] + size / 2.0


@pytest.fixture
def background() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(128, 160, 3), dtype=np.uint8)


def test_sphere_silhouette_covers_projected_front_and_keeps_background_elsewhere(background):
    radius, distance = 0.5, 60.0
    vertices, faces = uv_sphere(radius=radius)
    translation = np.array([0.0, 0.0, distance])
    result = render_mesh(vertices, faces, translation=translation, image=background)
    assert isinstance(result, RenderResult)
    assert result.image.shape == background.shape and result.image.dtype == np.uint8
    assert result.mask.shape == background.shape[:2] and result.mask.dtype == bool

    # Vertices on the camera-facing cap (within 60 degrees of the view axis) and the centre.
    front = vertices[vertices[:, 2] < -0.5 * radius] + translation
    uv = project(np.concatenate([front, [translation]]), 0) + np.array([80.0, 64.0])
    assert result.mask[np.floor(uv[:, 1]).astype(int), np.floor(uv[:, 0]).astype(int)].all()

    # Pixels whose centres are well outside the projected disk keep the background exactly.
    rows, cols = np.mgrid[0:128, 0:160]
    disk_radius = FOCAL * radius / np.sqrt(distance**2 - radius**2)
    outside = np.hypot(cols + 0.5 - 80.0, rows + 0.5 - 64.0) > disk_radius + 1.5
    assert not result.mask[outside].any()
    np.testing.assert_array_equal(result.image[outside], background[outside])
    assert np.isinf(result.depth[outside]).all() and (result.face_index[outside] == -1).all()
    assert (result.depth[result.mask] > distance - radius - 1e-3).all()


def test_sphere_silhouette_area_matches_projected_disk():
    radius, distance, size = 0.5, 40.0, 200
    vertices, faces = uv_sphere(48, 96, radius)
    result = render_mesh(vertices, faces, translation=(0.0, 0.0, distance), image_size=(size, size))
    # The silhouette of a sphere seen on the optical axis is a disk of radius f r / sqrt(d^2 - r^2).
    disk_area = np.pi * (FOCAL * radius / np.sqrt(distance**2 - radius**2)) ** 2
    assert result.mask.sum() == pytest.approx(disk_area, rel=0.02)


@pytest.mark.parametrize("near_first", [True, False])
def test_nearer_quad_hides_farther_one_regardless_of_face_order(near_first):
    near_vertices, near_faces = quad(-0.2, -0.2, 0.1, 0.1, 10.0)
    far_vertices, far_faces = quad(-0.1, -0.1, 0.2, 0.2, 12.0)
    red, green = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)
    parts = [(near_vertices, near_faces, red), (far_vertices, far_faces, green)]
    if not near_first:
        parts.reverse()
    vertices = np.concatenate([p[0] for p in parts])
    faces = np.concatenate([parts[0][1], parts[1][1] + 4])
    colors = np.repeat([parts[0][2], parts[1][2]], 4, axis=0)
    result = render_mesh(vertices, faces, image_size=(224, 224), vertex_colors=colors, ambient=1.0)

    # Overlap: camera-frame x, y in (-0.1, 0.1) at z = 10 and 12 -> pixels 62..162 around the centre.
    overlap = result.image[80:140, 80:140].reshape(-1, 3)
    assert (overlap == (255, 0, 0)).all()
    # Only the far quad: x, y in (0.1, 0.2) at z = 12 -> about pixels 154..195.
    assert (result.image[170:190, 170:190].reshape(-1, 3) == (0, 255, 0)).all()
    near_face_ids = (0, 1) if near_first else (2, 3)
    assert np.isin(result.face_index[80:140, 80:140], near_face_ids).all()
    np.testing.assert_allclose(result.depth[80:140, 80:140], 10.0, rtol=1e-5)


def test_mesh_across_image_border_and_behind_camera_renders(background):
    vertices, faces = uv_sphere(radius=1.0)
    # Centred on the image corner: part of the disk is outside the image.
    corner = render_mesh(vertices, faces, translation=(-1.0, -0.8, 50.0), image=background)
    assert corner.mask[0, 0] and not corner.mask[-1, -1]
    # Camera inside the sphere: the triangles behind the camera are dropped, the rest drawn.
    inside = render_mesh(vertices, faces, translation=(0.0, 0.0, 0.3), image=background, focal_length=100.0)
    assert inside.mask.any() and np.isfinite(inside.depth[inside.mask]).all()
    assert (inside.depth[inside.mask] > 0).all()
    # Just in front of the camera: a quad projecting millions of pixels wide covers everything.
    close_vertices, close_faces = quad(-1.0, -1.0, 1.0, 1.0, 0.002)
    close = render_mesh(close_vertices, close_faces, image=background)
    assert close.mask.all() and np.allclose(close.depth, 0.002)
    # Entirely behind the camera, and an empty mesh: nothing drawn, background returned.
    behind = render_mesh(vertices, faces, translation=(0.0, 0.0, -5.0), image=background)
    empty = render_mesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=int), image=background)
    for result in (behind, empty):
        assert not result.mask.any()
        np.testing.assert_array_equal(result.image, background)


def test_background_image_is_not_modified(background):
    original = background.copy()
    vertices, faces = uv_sphere(radius=0.5)
    result = render_mesh(vertices, faces, translation=(0.0, 0.0, 40.0), image=background, alpha=0.5)
    np.testing.assert_array_equal(background, original)
    assert result.image is not background and result.mask.any()
    # Half-transparent: covered pixels lie between the mesh colour and the background.
    opaque = render_mesh(vertices, faces, translation=(0.0, 0.0, 40.0), image=background)
    blended = 0.5 * opaque.image[result.mask].astype(float) + 0.5 * background[result.mask]
    assert np.abs(result.image[result.mask] - blended).max() <= 1.0


def test_square_of_two_triangles_covers_each_interior_pixel_exactly_once():
    # Corners on pixel centres: edges and the diagonal pass exactly through pixel centres.
    corners = np.array([[10.5, 10.5, 5.0], [50.5, 10.5, 5.0], [50.5, 50.5, 5.0], [10.5, 50.5, 5.0]])
    triangles = np.array([[0, 1, 2], [0, 2, 3]])
    depth, face_index, _ = rasterize(corners, triangles, 64, 64)
    covered = face_index >= 0
    # Top-left rule: the top and left edges are included, the bottom and right are not.
    expected = np.zeros((64, 64), dtype=bool)
    expected[10:50, 10:50] = True
    np.testing.assert_array_equal(covered, expected)
    # Each triangle alone: together they tile the square, without overlap on the diagonal.
    alone = [rasterize(corners, triangles[[k]], 64, 64)[1] >= 0 for k in range(2)]
    assert not (alone[0] & alone[1]).any()
    np.testing.assert_array_equal(alone[0] | alone[1], expected)


def test_triangle_fan_with_shared_edges_has_no_holes():
    # An irregular polygon split into a fan around an off-grid centre, in a mixed face order.
    rng = np.random.default_rng(3)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 40))
    rim = np.stack([60 + 45 * np.cos(angles), 50 + 40 * np.sin(angles), np.full(40, 3.0)], axis=1)
    vertices = np.concatenate([[[61.3, 49.7, 3.0]], rim])
    faces = np.array([[0, 1 + k, 1 + (k + 1) % 40] for k in range(40)])
    faces = faces[rng.permutation(40)]
    faces[::2] = faces[::2, ::-1]  # winding must not matter
    _, face_index, barycentrics = rasterize(vertices, faces, 100, 120)

    # Signed distance of every pixel centre into the polygon (the fan's outline): pixels on the
    # shared spokes count like any other interior pixel.
    outline = rim[:, :2].astype(np.float32).reshape(-1, 1, 2)
    into_polygon = np.array(
        [cv2.pointPolygonTest(outline, (j + 0.5, i + 0.5), True) for i in range(100) for j in range(120)]
    )
    covered = face_index.reshape(-1) >= 0
    assert covered[into_polygon > 1e-3].all()
    assert not covered[into_polygon < -1e-3].any()
    weights = barycentrics[face_index >= 0]
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    assert (weights > -1e-5).all()


def random_triangle_soup(n_triangles: int, height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Screen-space triangles (u, v, depth), partly off-image and intersecting in depth."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform([-5.0, -5.0], [width + 5.0, height + 5.0], size=(n_triangles, 1, 2))
    corners = centres + rng.normal(scale=8.0, size=(n_triangles, 3, 2))
    depths = rng.uniform(1.0, 5.0, size=(n_triangles, 3, 1))
    vertices = np.concatenate([corners, depths], axis=2).reshape(-1, 3)
    return vertices, np.arange(3 * n_triangles).reshape(-1, 3)


def reference_rasterize(vertices, faces, height, width):
    """Per-triangle float64 rasterisation of every pixel centre; flags ambiguous pixels."""
    rows, cols = np.mgrid[0:height, 0:width]
    point = np.stack([cols + 0.5, rows + 0.5], axis=-1)
    depth = np.full((len(faces), height, width), np.inf)
    weights = np.zeros((len(faces), height, width, 3))
    near_edge = np.zeros((height, width), dtype=bool)
    for index, face in enumerate(faces):
        (u, v, z) = vertices[face].T
        area = (u[1] - u[0]) * (v[2] - v[0]) - (u[2] - u[0]) * (v[1] - v[0])
        screen = np.stack(
            [
                ((u[1] - point[..., 0]) * (v[2] - point[..., 1]) - (u[2] - point[..., 0]) * (v[1] - point[..., 1])),
                ((u[2] - point[..., 0]) * (v[0] - point[..., 1]) - (u[0] - point[..., 0]) * (v[2] - point[..., 1])),
                ((u[0] - point[..., 0]) * (v[1] - point[..., 1]) - (u[1] - point[..., 0]) * (v[0] - point[..., 1])),
            ],
            axis=-1,
        ) / area
        inside = (screen > 1e-6).all(axis=-1)
        near_edge |= (np.abs(screen) <= 1e-6).any(axis=-1) & (screen > -1e-6).all(axis=-1)
        perspective = screen / z
        depth[index][inside] = 1.0 / perspective.sum(axis=-1)[inside]
        weights[index][inside] = perspective[inside] / perspective.sum(axis=-1, keepdims=True)[inside]
    order = np.sort(depth, axis=0)
    ambiguous = near_edge | (order[1] < order[0] + 1e-6)
    nearest = np.where(np.isfinite(order[0]), depth.argmin(axis=0), -1)
    return nearest, order[0], np.take_along_axis(weights, np.maximum(nearest, 0)[None, ..., None], 0)[0], ambiguous


def test_rasterize_matches_per_pixel_reference_on_intersecting_triangles():
    height, width = 40, 48
    vertices, faces = random_triangle_soup(60, height, width, seed=7)
    depth, face_index, barycentrics = rasterize(vertices, faces, height, width)
    nearest, reference_depth, reference_weights, ambiguous = reference_rasterize(vertices, faces, height, width)
    clear = ~ambiguous
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(face_index[clear], nearest[clear])
    hit = clear & (nearest >= 0)
    assert hit.mean() > 0.5
    np.testing.assert_allclose(depth[hit], reference_depth[hit], rtol=1e-5)
    np.testing.assert_allclose(barycentrics[hit], reference_weights[hit], atol=1e-4)
    assert (barycentrics[face_index < 0] == 0).all() and np.isinf(depth[face_index < 0]).all()


def test_rasterize_result_does_not_depend_on_chunking(monkeypatch):
    from spin_diff.render import rasterizer

    vertices, faces = random_triangle_soup(40, 50, 60, seed=1)
    # Plus one triangle covering the whole image, behind everything else.
    vertices = np.concatenate([vertices, [[-100.0, -100.0, 9.0], [400.0, -100.0, 9.0], [-100.0, 400.0, 9.0]]])
    faces = np.concatenate([faces, [[len(vertices) - 3, len(vertices) - 2, len(vertices) - 1]]])
    whole = rasterize(vertices, faces, 50, 60)
    monkeypatch.setattr(rasterizer, "_CANDIDATES_PER_CHUNK", 37)
    chunked = rasterize(vertices, faces, 50, 60)
    for single, split in zip(whole, chunked):
        np.testing.assert_array_equal(single, split)
    assert (whole[1] >= 0).all()


def test_depth_and_barycentrics_are_perspective_correct():
    # A plane tilted in depth: z = 4 + x. The depth at a pixel is the ray-plane intersection.
    vertices = np.array([[-1.0, -1.0, 3.0], [1.0, -1.0, 5.0], [1.0, 1.0, 5.0], [-1.0, 1.0, 3.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    focal, size = 100.0, 100
    result = render_mesh(vertices, faces, focal_length=focal, image_size=(size, size))
    rows, cols = np.nonzero(result.mask)
    ray_x = (cols + 0.5 - size / 2.0) / focal
    # z = 4 + x = 4 + ray_x z  ->  z = 4 / (1 - ray_x)
    np.testing.assert_allclose(result.depth[rows, cols], 4.0 / (1.0 - ray_x), rtol=1e-5)

    screen = np.concatenate([focal * vertices[:, :2] / vertices[:, 2:] + size / 2.0, vertices[:, 2:]], axis=1)
    _, face_index, barycentrics = rasterize(screen, faces, size, size)
    # Interpolating the 3D vertices with the weights lands on the pixel's ray.
    points = np.einsum("nk,nkc->nc", barycentrics[rows, cols], vertices[faces[face_index[rows, cols]]])
    np.testing.assert_allclose(focal * points[:, 0] / points[:, 2] + size / 2.0, cols + 0.5, atol=1e-3)
    np.testing.assert_allclose(focal * points[:, 1] / points[:, 2] + size / 2.0, rows + 0.5, atol=1e-3)


def test_camera_convention_and_pixel_centres():
    # A point at camera-frame (x, y) lands at u = f x / z + cx, v = f y / z + cy (y down).
    vertices, faces = quad(0.0, 0.0, 0.02, 0.04, 10.0)  # u in [112, 122], v in [112 + 8, 132 + 8]
    result = render_mesh(vertices, faces, image_size=(224, 240), camera_center=(112.0, 120.0))
    rows, cols = np.nonzero(result.mask)
    assert (cols.min(), cols.max(), rows.min(), rows.max()) == (112, 121, 120, 139)
    # The x flip about the camera: a y-up offset appears above the image centre.
    up, _ = quad(-0.01, 0.05, 0.01, 0.07, 0.0)
    flipped = render_mesh(up, faces, rotation=FLIP, translation=(0.0, 0.0, 10.0), image_size=(224, 224))
    assert np.nonzero(flipped.mask)[0].max() < 112


def test_torch_vertices_and_focal_pair():
    import torch
    vertices, faces = uv_sphere(radius=0.5)
    reference = render_mesh(vertices, faces, translation=(0.0, 0.0, 40.0), image_size=(64, 64), focal_length=(900, 900))
    tensor = torch.tensor(vertices, dtype=torch.float64, requires_grad=True)
    result = render_mesh(tensor, torch.tensor(faces), translation=torch.tensor([0.0, 0.0, 40.0]), image_size=(64, 64),
                         focal_length=900.0)
    np.testing.assert_array_equal(result.mask, reference.mask)


def test_smooth_and_flat_shading_and_part_colors():
    vertices, faces = uv_sphere(radius=0.5)
    labels = (vertices[:, 0] > 0).astype(int)
    colors = part_colors(labels)
    assert colors.shape == (len(vertices), 3) and (colors >= 0).all() and (colors <= 1).all()
    assert not np.allclose(colors[labels == 0][0], colors[labels == 1][0])
    assert len({tuple(c) for c in part_colors(np.arange(24))}) == 24
    kwargs = dict(translation=(0.0, 0.0, 30.0), image_size=(128, 128))
    smooth = render_mesh(vertices, faces, vertex_colors=colors, ambient=1.0, **kwargs)
    flat = render_mesh(vertices, faces, smooth=False, **kwargs)
    np.testing.assert_array_equal(smooth.mask, flat.mask)
    # Without directional light the parts show their exact colours: x < 0 is the image's left.
    np.testing.assert_array_equal(smooth.image[64, 40], np.rint(255 * colors[labels == 0][0]))
    np.testing.assert_array_equal(smooth.image[64, 88], np.rint(255 * colors[labels == 1][0]))
    # Flat shading is constant over a face; smooth shading varies within a face.
    visible_faces = np.unique(flat.face_index[flat.mask])
    for face in visible_faces[:50]:
        assert len(np.unique(flat.image[flat.face_index == face], axis=0)) == 1
    shaded = render_mesh(vertices, faces, **kwargs)
    big_face = np.bincount(shaded.face_index[shaded.mask]).argmax()
    assert len(np.unique(shaded.image[shaded.face_index == big_face], axis=0)) > 1


def test_orbit_rotation_and_look_at_translation_frame_the_mesh():
    np.testing.assert_allclose(orbit_rotation(0.0), FLIP, atol=1e-12)
    # Yaw 90: the body's front (+z) turns to +x, i.e. to the image right after the flip.
    np.testing.assert_allclose(orbit_rotation(90.0) @ [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], atol=1e-12)
    vertices, faces = uv_sphere(radius=1.0)
    body = vertices * np.array([0.25, 0.85, 0.15])
    for yaw, focal, size in [(0.0, FOCAL, (224, 224)), (90.0, 1200.0, (300, 400))]:
        rotation = orbit_rotation(yaw)
        translation = look_at_translation(body, rotation, focal, size, fill=0.8)
        result = render_mesh(body, faces, rotation=rotation, translation=translation, focal_length=focal,
                             image_size=size)
        rows, cols = np.nonzero(result.mask)
        assert rows.max() + 1 - rows.min() == pytest.approx(0.8 * size[0], abs=2)
        assert (rows.min() + rows.max() + 1) / 2 == pytest.approx(size[0] / 2, abs=1.5)
        assert (cols.min() + cols.max() + 1) / 2 == pytest.approx(size[1] / 2, abs=1.5)


def test_save_png_writes_rgb(tmp_path):
    image = np.zeros((4, 5, 3), dtype=np.uint8)
    image[..., 0] = 200  # red
    path = save_png(tmp_path / "nested" / "red.png", image)
    written = cv2.imread(str(path))
    assert written.shape == (4, 5, 3)
    assert (written[..., 2] == 200).all() and (written[..., :2] == 0).all()  # BGR on disk


def test_errors_name_the_bad_input():
    vertices, faces = quad(0, 0, 1, 1, 5.0)
    with pytest.raises(ValueError, match="image_size"):
        render_mesh(vertices, faces)
    with pytest.raises(ValueError, match="vertices"):
        render_mesh(vertices[:, :2], faces, image_size=(8, 8))
    with pytest.raises(ValueError, match="uint8"):
        render_mesh(vertices, faces, image=np.zeros((8, 8, 3), dtype=np.float32))
