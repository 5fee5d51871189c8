"""Speed of the numpy mesh renderer on one CPU core.

Run: /work/venv/bin/python benchmarks/render.py

Renders a body-sized mesh (the body model's template if `spin_diff.body` provides one, otherwise
a UV sphere stretched to a body-like ellipsoid, plus the unstretched sphere as a worst case that
covers more pixels) and prints renders per second for a 224x224 person crop (focal 5000) and the
time of one 1000x1000 overlay on a random background image.
"""

from __future__ import annotations

import os

# One thread everywhere, set before numpy / cv2 / torch load their thread pools.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import platform  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

try:
    import spin_diff  # noqa: F401
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from spin_diff.render import look_at_translation, orbit_rotation, render_mesh  # noqa: E402

cv2.setNumThreads(1)


def limit_torch_threads() -> None:
    """One torch thread too, if anything (the body model) imported torch."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def uv_sphere(n_rings: int = 60, n_segments: int = 118, radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """UV sphere with ``(n_rings - 1) * n_segments + 2`` vertices and ``2 * n_segments * (n_rings - 1)`` faces."""
    polar = np.linspace(0.0, np.pi, n_rings + 1)[1:-1]
    azimuth = np.linspace(0.0, 2.0 * np.pi, n_segments, endpoint=False)
    polar, azimuth = np.meshgrid(polar, azimuth, indexing="ij")
    ring_vertices = np.stack(
        [np.sin(polar) * np.cos(azimuth), np.cos(polar), np.sin(polar) * np.sin(azimuth)], axis=-1
    ).reshape(-1, 3)
    vertices = np.concatenate([[[0.0, 1.0, 0.0]], ring_vertices, [[0.0, -1.0, 0.0]]]) * radius
    top, bottom = 0, len(vertices) - 1
    ring = lambda r, s: 1 + r * n_segments + s % n_segments  # noqa: E731
    faces = []
    for s in range(n_segments):
        faces.append((top, ring(0, s + 1), ring(0, s)))
        faces.append((bottom, ring(n_rings - 2, s), ring(n_rings - 2, s + 1)))
        for r in range(n_rings - 2):
            faces.append((ring(r, s), ring(r, s + 1), ring(r + 1, s + 1)))
            faces.append((ring(r, s), ring(r + 1, s + 1), ring(r + 1, s)))
    return vertices, np.asarray(faces, dtype=np.int64)


def test_meshes() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, vertices, faces) of the meshes to time: y-up, metres, about a person's size."""
    meshes = []
    try:
        import torch

        from spin_diff.body.demo_poses import named_pose
        from spin_diff.body.model import load_body_model

        model = load_body_model()
        with torch.no_grad():
            pose = torch.tensor(named_pose("walk"), dtype=torch.float32)[None]
            vertices = model(pose, torch.zeros(1, model.num_betas)).vertices[0].double().numpy()
        meshes.append(("bundled body (walk)", vertices, model.faces))
    except Exception as error:  # run the synthetic meshes even where the package is broken
        print(f"(body model not used: {type(error).__name__}: {error})")
    sphere_vertices, sphere_faces = uv_sphere()
    body_like = sphere_vertices * np.array([0.25, 0.85, 0.15])  # ellipsoid ~1.7 m tall
    meshes.append(("ellipsoid (UV sphere)", body_like, sphere_faces))
    meshes.append(("sphere (worst case)", sphere_vertices * 0.5, sphere_faces))
    return meshes


def time_renders(function, repeats: int, warmup: int = 3) -> tuple[np.ndarray, float]:
    """Wall-clock seconds of each call after a warm-up, and minor page faults per call."""
    for _ in range(warmup):
        function()
    times = np.empty(repeats)
    faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for k in range(repeats):
        start = time.perf_counter()
        function()
        times[k] = time.perf_counter() - start
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before) / repeats
    return times, faults


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    rng = np.random.default_rng(0)
    rotation = orbit_rotation(0.0)
    crop_size = (224, 224)
    full_size = (1000, 1000)
    crop_image = rng.integers(0, 256, size=(*crop_size, 3), dtype=np.uint8)
    full_image = rng.integers(0, 256, size=(*full_size, 3), dtype=np.uint8)
    meshes = test_meshes()
    limit_torch_threads()

    renderers = []
    for name, vertices, faces in meshes:
        # Person crop: focal 5000 px, the mesh spanning 80% of the crop height.
        crop_t = look_at_translation(vertices, rotation, 5000.0, crop_size, fill=0.8)
        # Full image: focal 1200 px (about the image diagonal), mesh 70% of the height, blended.
        full_focal = 1200.0
        full_t = look_at_translation(vertices, rotation, full_focal, full_size, fill=0.7)

        def crop_render(vertices=vertices, faces=faces, crop_t=crop_t):
            return render_mesh(vertices, faces, rotation=rotation, translation=crop_t, image=crop_image)

        def full_render(vertices=vertices, faces=faces, full_t=full_t):
            return render_mesh(vertices, faces, rotation=rotation, translation=full_t, image=full_image,
                               focal_length=full_focal, alpha=0.8)

        renderers.append((name, len(vertices), len(faces), crop_render, full_render))

    # All 224 timings first: large renders leave glibc keeping freed memory (its adaptive mmap and
    # trim thresholds grow), which removes page faults from later small renders; timed again last.
    crop_results = [time_renders(crop_render, 50) for _, _, _, crop_render, _ in renderers]
    full_results = [time_renders(full_render, 10) for _, _, _, _, full_render in renderers]
    crop_again = [time_renders(crop_render, 50) for _, _, _, crop_render, _ in renderers]

    print(f"machine: {cpu_name()} ({platform.machine()}, {os.cpu_count()} logical CPUs), "
          f"python {platform.python_version()}, numpy {np.__version__}, cv2 {cv2.__version__}, 1 thread")
    header = (f"{'mesh':<22} {'verts':>6} {'faces':>6} | {'224 cover':>9} {'renders/s':>9} {'ms':>5} {'faults':>6} "
              f"| {'later r/s':>9} | {'1000 cover':>10} {'ms':>6}")
    print(header)
    print("-" * len(header))
    for (name, n_vertices, n_faces, crop_render, full_render), crop, full, again in zip(
        renderers, crop_results, full_results, crop_again
    ):
        crop_ms = 1e3 * np.median(crop[0])
        print(f"{name:<22} {n_vertices:>6} {n_faces:>6} | {crop_render().mask.mean():>9.1%} {1e3 / crop_ms:>9.1f} "
              f"{crop_ms:>5.1f} {crop[1]:>6.0f} | {1.0 / np.median(again[0]):>9.1f} | "
              f"{full_render().mask.mean():>10.1%} {1e3 * np.median(full[0]):>6.1f}")
    print("224: median of 50 renders (after 3 warm-up) over a random 224x224 image, focal 5000, mesh at 80% of")
    print("     the height; faults = minor page faults per render (expensive in VMs); later r/s = the same")
    print("     renders timed again after the 1000x1000 ones, when the C allocator keeps freed memory mapped.")
    print("1000: median of 10 renders blended (alpha 0.8) over a random 1000x1000 image, focal 1200, 70% of the height.")


if __name__ == "__main__":
    main()
