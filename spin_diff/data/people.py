"""The one generator of synthetic people: pose, orientation, shape, framing, camera, detector.

Every synthetic person in the project is drawn here: the bundled keypoint regressor's
training stream (:class:`spin_diff.training.train_keypoints.SyntheticKeypoints`), the fitting
problems of the tests and benchmarks (:func:`spin_diff.data.keypoint_sets.make_problems`,
:func:`~spin_diff.data.keypoint_sets.make_photo_problems`, ``spin-diff synth --keypoints-only``)
and the bodies of the rendered image sets (:mod:`spin_diff.data.synth`). One core,
:func:`draw_people`, does it in this order:

1. pose: a body pose (69) from a :class:`PosePool` (real mocap poses, each keeping its own
   tilt, or pose-sampler poses, each with the lean that balances it) or, without a pool,
   fresh pose-sampler poses; each pose's heading is removed, so it faces +z;
2. orientation: ``R = R_x(180) R_y(yaw) B R_x(pitch) R_z(roll)``: the pose's base tilt ``B``,
   pitch and roll ``N(0, tilt_std)`` clipped at 3 std, a yaw ``U(yaw_range)`` (+180 degrees
   with ``back_view_prob``), then upright in the y-down, z-forward camera frame;
3. shape: betas ``N(0, shape_std)`` clipped at ``+-shape_clip``;
4. camera and framing: ``"crop"`` framing puts the body root at depth ``U(depth_range)``
   metres and ``N(0, lateral_std)`` metres off the optical axis of SPIN's crop camera;
   ``"fill"`` framing sizes each person's keypoint box to ``U(fill_range)`` of the image's
   shorter side / 1.2 and moves its centre off the principal point by up to ``placement``
   of the free room (a photo camera);
5. detector: the 49 keypoints projected (confidence 1, also outside the image), then
   :func:`spin_diff.data.corruption.corrupt_keypoints` with the preset's corruption (its box:
   the crop, or 1.2 x the person's keypoint box), then whole blocks removed: the 24 GT
   joints with ``openpose_only_prob`` (OpenPose input), the 25 OpenPose ones with
   ``gt_only_prob``; for a share ``face_hiding_prob`` of people the OpenPose face points the
   head hides are not detected (:func:`spin_diff.data.corruption.hidden_by_head` on the
   camera-frame depths, the rule the bundled detector applies to BlazePose's), and for a
   share ``no_small_toes_prob`` the two small toes are not (the bundled detector has none;
   OpenPose marks them). Every preset below leaves both shares at 0.

The presets, one row each (:data:`PRESETS`; :func:`preset` returns one, with overrides):

=========  ======  =======  ====  ====  ==============  =======================  ====  =====  =======  =======
preset     camera  yaw deg  back  tilt  betas           framing                  box   corr.  OP-only  GT-only
=========  ======  =======  ====  ====  ==============  =======================  ====  =====  =======  =======
regressor  crop    -70..70  0.10  6     N(0,1) +-3      box 0.8-1.05, +-5%       1     det.   0.40     0.10
fitting    crop    -45..45  0     0     N(0,0.8)        box 0.8-1.05, +-5%       1     none   0        0
photo      photo   -70..70  0.10  6     N(0,0.8) +-2.4  fill 0.5-0.9, place 0.6  -     none   1        0
rendered   synth   -70..70  0.10  6     N(0,1) +-3      mesh 0.6-0.95            -     det.   -        -
=========  ======  =======  ====  ====  ==============  =======================  ====  =====  =======  =======

back: share turned away; tilt: pitch and roll std, degrees; framing ``box``: the
``"crop"``-framed person as a detector-box crop (keypoint box's larger side 0.8-1.05 of 224 / 1.2,
centre within +-5% of the crop, as ``spin-diff fit`` crops photos); box: the share framed so,
the rest (none in these presets) at a root depth of ``depth_range`` (40-55 m) and
``lateral_std`` (0.1 m) off the axis; fill: box side over the shorter image side,
place: centre offset (``"fill"`` framing); corr.: corruption preset (``det.``: ``"detector"``;
callers such as the benchmarks pass their own); OP-only / GT-only: shares with only that
block detected.
crop camera: SPIN's 224 px crop, focal 5000 px, corruption scaled by the crop; photo:
1280 x 960 px, focal the image diagonal (a 53-degree view, as CLIFF assumes), corruption
scaled by 1.2 x each person's keypoint box. ``rendered`` holds the body draws of
:class:`spin_diff.data.synth.SynthConfig`'s defaults (its framing frames the rendered mesh
in :mod:`spin_diff.data.synth`); a set's config overrides them.

**One framing everywhere: detector-box crops.** The ``regressor`` and ``fitting`` presets frame
every person as a detector-box crop (``box`` 1 above): the framing users feed the regressor,
since ``spin-diff fit`` crops every photo person by its keypoint box (side x 1.2, SPIN's
convention), as SPIN's datasets do. Decided 2026-12-02, after a regressor trained half on this
framing and half on a depth framing (root at 40-55 m, 0.1 m off axis: the fitting problems'
framing until then) was measured better on those depth-framed problems but 5.6 mm worse on
rendered box crops (69.3 vs 63.7 mm PA-MPJPE start) and worse on both real photos of
``docs/fitting.md``: it was measured on a framing nobody uses it on. Now the regressor is
trained on the framing it is measured on and used on. Measured (start alone, PA-MPJPE mm,
2026-12-02; box-framed fitting problems, 64 people each, detector keypoints; the bundled
checkpoint chosen on the CMU validation clips, reported on the test clips;
``benchmarks/regressor_starts.py --poses sampler,val,test`` and
``benchmarks/bundled_regressor.py``, 24 rendered people):

=======================================  =======  =======  ========  ==================
regressor trained on                     sampler  CMU val  CMU test  rendered box crops
=======================================  =======  =======  ========  ==================
box crops only, old generator (first)    56.1     57.5     58.0      63.7
the depth framing only                   73.2     60.4     63.1      79.1
half each (bundled before)               58.2     56.9     58.7      69.3
box crops only (bundled)                 56.7     55.7     58.3      62.5
=======================================  =======  =======  ========  ==================

The box-only retraining is 1.2 mm better than the half-and-half one on the validation clips, so
it is bundled; on the test clips it is 0.4 mm better, on rendered box crops 6.8 mm (after
``spin-diff fit``'s default fit: 60.4 vs 65.7). It is no better than the first regressor on the
box-framed fitting problems (58.3 vs 58.0 on the test clips), and on 48-person test rows with
the legs shifted out of the crop (``benchmarks/fit_accuracy.py``'s border row) it starts far
worse than the half-and-half one (189.4 vs 133.9), having never seen a person off the crop
centre. Real photos (``spin-diff fit``'s default): the walker 7.79 -> 6.39 px, the lunge
11.55 -> 11.79 px, still flagged. ``box_share`` below 1 still
gives the depth framing to a caller that asks for it. The rest
differs on purpose: the regressor sees a wider spread than any one benchmark (yaw to 70
degrees and people turned away, tilts, wider shapes, OpenPose-only input and detector noise),
since it must start fits on real photos too; the fitting problems stay the benchmarks' set
(facing within 45 degrees, clean unless a caller corrupts).

**Batch independence.** Person ``i`` of seed ``s`` is a function of ``(s, i)`` and the preset
only: every random number of person ``i`` comes from a counter-based draw keyed by
``(s, stream, i)`` (:class:`KeyedDraws`: the SplitMix64 hash of the keyed per-example
noise of :mod:`spin_diff.utils.seeds`, as a numpy generator), the pose sampler is
drawn in fixed chunks of :data:`SAMPLER_CHUNK` keyed by ``(s, chunk)``, and a pool drawn
without replacement is read through one permutation keyed by ``s``. So
``draw_people(..., count=8)`` is the first 8 people of ``count=64``, and ``start`` continues a
stream (the training batches). Only float rounding of the batched body forward may differ
(~1e-7 m).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Literal, Sequence

import numpy as np
import torch

from spin_diff.body.joints import KEYPOINT_FLIP_PERM, joint_indices
from spin_diff.body.model import pose_to_rotmat
from spin_diff.constants import CROP_SIZE, FOCAL_LENGTH, NUM_KEYPOINTS, NUM_OPENPOSE_JOINTS
from spin_diff.data.corruption import CorruptionConfig, corrupt_keypoints, hidden_by_head
from spin_diff.errors import BadInputError
from spin_diff.geometry.rotations import axis_angle_to_matrix, facing_yaw, matrix_to_axis_angle, yaw_matrix
from spin_diff.priors import pose_sampler
from spin_diff.utils.seeds import mix64

__all__ = [
    "PeoplePreset", "PRESETS", "preset", "PosePool", "People", "Bodies", "KeyedDraws",
    "draw_bodies", "draw_people", "global_orient", "sample_global_orient", "frame_person", "SAMPLER_CHUNK",
]  # fmt: skip

log = logging.getLogger(__name__)

# Independent keyed streams: changing how one step draws never shifts another.
_POSE, _ORIENT, _SHAPE, _FRAMING, _CORRUPTION, _BLOCKS, _TOES, _FACE = range(8)
# The OpenPose face points of the face-hiding rule and the small toes the bundled detector lacks.
_NOSE, = joint_indices(["OP Nose"])
_EARS = tuple(joint_indices(["OP LEar", "OP REar"]))
_FACE_FRONT = joint_indices(["OP Nose", "OP LEye", "OP REye"])
_FACE_PAIRS = [tuple(joint_indices([f"OP L{part}", f"OP R{part}"])) for part in ("Ear", "Eye")]
_SMALL_TOES = joint_indices(["OP LSmallToe", "OP RSmallToe"])
SAMPLER_CHUNK = 64  # pose-sampler poses per keyed chunk (the sampler draws batches, not people)


@dataclass(frozen=True)
class PeoplePreset:
    """One row of the preset table (module docstring). Angles in degrees."""

    name: str
    camera: Literal["crop", "photo"]
    image_size: tuple[int, int]  # (width, height) pixels
    focal_length: float | None  # pixels; None: the image diagonal
    yaw_range: tuple[float, float]
    back_view_prob: float
    tilt_std: float
    shape_std: float
    shape_clip: float | None  # None: no clip
    framing: Literal["crop", "fill"]
    depth_range: tuple[float, float] = (40.0, 55.0)  # framing "crop": root depth, metres
    lateral_std: float = 0.1  # framing "crop": root off the optical axis, metres
    box_share: float = 0.0  # framing "crop": share framed as detector-box crops instead
    box_fill: tuple[float, float] = (0.8, 1.05)  # ... keypoint box's larger side / (crop side / 1.2)
    box_offset: float = 0.05  # ... its centre off the crop centre, up to this share of the crop
    fill_range: tuple[float, float] = (0.5, 0.9)  # framing "fill": box side / shorter image side
    placement: float = 0.6  # framing "fill": centre offset, fraction of the free room
    corruption: str = "none"  # a spin_diff.data.corruption preset
    corruption_box: Literal["crop", "person"] = "crop"  # the box corruption scales with
    openpose_only_prob: float = 0.0  # people whose 24 GT keypoints are removed
    gt_only_prob: float = 0.0  # people whose 25 OpenPose keypoints are removed
    pool_draw: Literal["with_replacement", "without_replacement"] = "without_replacement"
    face_hiding_prob: float = 0.0  # people whose OpenPose face points the head hides are not detected
    no_small_toes_prob: float = 0.0  # people whose two OpenPose small toes are not detected

    def corruption_config(self) -> CorruptionConfig:
        return CorruptionConfig.preset(self.corruption)


# The one table (rendered in the module docstring; tests check draws against it).
_CROP = dict(camera="crop", image_size=(int(CROP_SIZE), int(CROP_SIZE)), focal_length=FOCAL_LENGTH, framing="crop",
             depth_range=(40.0, 55.0), lateral_std=0.1, corruption_box="crop")  # fmt: skip
PRESETS: dict[str, PeoplePreset] = {
    "regressor": PeoplePreset(
        "regressor", **_CROP, yaw_range=(-70.0, 70.0), back_view_prob=0.1, tilt_std=6.0, shape_std=1.0,
        shape_clip=3.0, box_share=1.0, corruption="detector", openpose_only_prob=0.4, gt_only_prob=0.1,
        pool_draw="with_replacement",
    ),
    "fitting": PeoplePreset(
        "fitting", **_CROP, yaw_range=(-45.0, 45.0), back_view_prob=0.0, tilt_std=0.0, shape_std=0.8,
        shape_clip=None, box_share=1.0, corruption="none",
    ),
    "photo": PeoplePreset(
        "photo", camera="photo", image_size=(1280, 960), focal_length=None, yaw_range=(-70.0, 70.0),
        back_view_prob=0.1, tilt_std=6.0, shape_std=0.8, shape_clip=2.4, framing="fill", fill_range=(0.5, 0.9),
        placement=0.6, corruption="none", corruption_box="person", openpose_only_prob=1.0,
    ),
    "rendered": PeoplePreset(
        "rendered", camera="photo", image_size=(320, 320), focal_length=None, yaw_range=(-70.0, 70.0),
        back_view_prob=0.1, tilt_std=6.0, shape_std=1.0, shape_clip=3.0, framing="fill", fill_range=(0.6, 0.95),
        placement=0.6, corruption="detector", corruption_box="person",
    ),
}  # fmt: skip


def preset(name: str, **overrides) -> PeoplePreset:
    """The preset ``name`` of :data:`PRESETS`, with fields replaced by ``overrides``."""
    if name not in PRESETS:
        raise BadInputError(f"unknown people preset {name!r}; choose from {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)


# ----------------------------------------------------------------------------------------
# Keyed random numbers: row b of every draw depends only on (seed, stream, index[b])

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)  # SplitMix64's increment: spaces the counters of one row


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 of every uint64 element: the project's one hash,
    :func:`~spin_diff.utils.seeds.mix64`, on the same 64-bit words."""
    words = torch.from_numpy(np.ascontiguousarray(np.asarray(x, dtype=_U64)).view(np.int64))
    return mix64(words).numpy().view(_U64)


class KeyedDraws:
    """A stand-in for ``numpy.random.Generator`` (``random``, ``uniform``, ``standard_normal``,
    ``integers``) whose row ``b`` of every draw depends only on ``(seed, stream, index[b])`` and
    on how many draws came before: a person's numbers never depend on the batch around it.

    Every draw's first dimension is the batch (``len(index)``), as
    :func:`~spin_diff.data.corruption.corrupt_keypoints` draws.
    """

    def __init__(self, seed: int, stream: int, index: np.ndarray) -> None:
        base = _mix(_mix(np.array([seed % 2**64], dtype=_U64)) ^ _U64(stream))
        self.keys = _mix(np.asarray(index, dtype=_U64) ^ base)  # (B,)
        self.calls = 0

    def random(self, size) -> np.ndarray:
        """Uniforms in (0, 1) of shape ``size`` (first entry the batch)."""
        size = (size,) if np.isscalar(size) else tuple(size)
        if size[0] != len(self.keys):
            raise BadInputError(f"keyed draws of {len(self.keys)} people asked for shape {size}")
        self.calls += 1
        per_row = int(np.prod(size[1:], dtype=np.int64))
        call = _mix(self.keys ^ _mix(np.array([self.calls], dtype=_U64)))  # (B,)
        counters = np.arange(1, per_row + 1, dtype=_U64) * _GOLDEN
        bits = _mix(call[:, None] + counters[None])
        return (((bits >> _U64(11)).astype(np.float64) + 0.5) * 2.0**-53).reshape(size)

    def uniform(self, low=0.0, high=1.0, size=None) -> np.ndarray:
        return low + (np.asarray(high) - low) * self.random(size)

    def standard_normal(self, size) -> np.ndarray:
        radius = np.sqrt(-2.0 * np.log(self.random(size)))
        return radius * np.cos(2.0 * np.pi * self.random(size))

    def normal(self, loc=0.0, scale=1.0, size=None) -> np.ndarray:
        return loc + scale * self.standard_normal(size)

    def integers(self, low, high, size) -> np.ndarray:
        return (low + np.floor(self.random(size) * (high - low))).astype(np.int64)


# ----------------------------------------------------------------------------------------
# Poses


@dataclass
class PosePool:
    """Body poses to draw people from. N poses."""

    body_pose: np.ndarray  # (N, 69) axis-angle of joints 1..23
    base_orient: np.ndarray  # (N, 3) axis-angle tilt each pose keeps (heading removed: faces +z)
    postures: list[str]

    def __len__(self) -> int:
        return len(self.body_pose)

    @classmethod
    def from_poses(cls, poses: np.ndarray) -> "PosePool":
        """Whole poses ``(N, 72)`` in a y-up world (e.g. :func:`spin_diff.data.real_poses.load_real_poses`):
        each keeps its own tilt (bending, lying); its heading is dropped."""
        poses = np.asarray(poses, dtype=np.float64)
        if poses.ndim != 2 or poses.shape[1] != 72 or len(poses) == 0:
            raise BadInputError(
                f"poses: expected a non-empty (N, 72) axis-angle array, got shape {poses.shape}"
            )
        if not np.isfinite(poses).all():
            raise BadInputError("poses: contains NaN or infinite values; drop those rows first")
        flip = axis_angle_to_matrix(torch.tensor([np.pi, 0.0, 0.0], dtype=torch.float64))  # y-up -> camera
        facing = flip @ axis_angle_to_matrix(torch.as_tensor(poses[:, :3]))
        base = flip.T @ yaw_matrix(-facing_yaw(facing)) @ facing
        return cls(poses[:, 3:].copy(), matrix_to_axis_angle(base).numpy(), ["real"] * len(poses))

    @classmethod
    def from_sampler(cls, count: int, seed: int = 0, postures: Sequence[str] | None = None) -> "PosePool":
        """The first ``count`` pose-sampler poses of ``seed`` (the chunks :func:`draw_people`
        draws without a pool), each with the lean that stands it balanced."""
        return _sampler_poses(np.arange(count), seed, postures)


def _sampler_poses(index: np.ndarray, seed: int, postures) -> PosePool:
    """Pose-sampler poses number ``index`` of ``seed``: chunk ``i // SAMPLER_CHUNK`` drawn from
    a generator keyed by ``(seed, chunk)``, so pose i never depends on how many are drawn."""
    chunks = {}
    for chunk in np.unique(index // SAMPLER_CHUNK):
        rng = np.random.default_rng([seed, _POSE, int(chunk)])
        poses, names = pose_sampler.sample_poses(SAMPLER_CHUNK, rng, list(postures) if postures else None)
        poses = np.asarray(poses, dtype=np.float64)
        chunks[int(chunk)] = (poses, list(names), pose_sampler.upright_global_orient(poses, names))
    rows = [(chunks[int(i) // SAMPLER_CHUNK], int(i) % SAMPLER_CHUNK) for i in index]
    return PosePool(
        np.stack([c[0][r] for c, r in rows]).reshape(-1, 69),
        np.stack([np.asarray(c[2][r], dtype=np.float64) for c, r in rows]).reshape(-1, 3),
        [c[1][r] for c, r in rows],
    )


def _draw_poses(
    spec: PeoplePreset, pool: PosePool | None, seed: int, index: np.ndarray, postures
) -> PosePool:
    """The poses of people ``index``: the pool's (keyed picks or one keyed permutation) or
    fresh pose-sampler chunks."""
    if pool is None:
        return _sampler_poses(index, seed, postures)
    if spec.pool_draw == "with_replacement":
        picks = KeyedDraws(seed, _POSE, index).integers(0, len(pool), len(index))
    else:
        if len(index) and index.max() >= len(pool):
            raise BadInputError(
                f"asked for people up to number {index.max() + 1} from {len(pool)} poses drawn without "
                "replacement: pass fewer, or more poses"
            )
        picks = np.random.default_rng([seed, _POSE]).permutation(len(pool))[index]
    return PosePool(pool.body_pose[picks], pool.base_orient[picks], [pool.postures[i] for i in picks])


# ----------------------------------------------------------------------------------------
# Orientation, shape


def _rotation(axis: int, degrees: np.ndarray) -> np.ndarray:
    vector = np.zeros(np.shape(degrees) + (3,))
    vector[..., axis] = np.deg2rad(degrees)
    return axis_angle_to_matrix(torch.as_tensor(vector, dtype=torch.float64)).numpy()


def global_orient(
    yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray, base_orient: np.ndarray | None = None
) -> np.ndarray:
    """``R = R_x(180) R_y(yaw) B R_x(pitch) R_z(roll)`` as ``(N, 3)`` axis-angle.

    Args:
        yaw, pitch, roll: ``(N,)`` degrees; yaw 0 faces the camera.
        base_orient: optional ``(N, 3)`` axis-angle ``B`` (a pose's own tilt; identity when None).
    """
    yaw = np.asarray(yaw, dtype=np.float64)
    base = np.eye(3) if base_orient is None else axis_angle_to_matrix(
        torch.as_tensor(np.asarray(base_orient), dtype=torch.float64)).numpy()  # fmt: skip
    upright = _rotation(0, np.full(yaw.shape, 180.0))  # SMPL's y-up body in the y-down camera frame
    rotation = upright @ _rotation(1, yaw) @ base @ _rotation(0, pitch) @ _rotation(2, roll)
    return matrix_to_axis_angle(torch.as_tensor(rotation)).numpy()


def _draw_orientation(spec: PeoplePreset, base: np.ndarray, draws) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 3)`` axis-angle and ``(N,)`` yaw in degrees wrapped to [-180, 180)."""
    num = len(base)
    yaw = draws.uniform(spec.yaw_range[0], spec.yaw_range[1], num)
    yaw = yaw + 180.0 * (draws.random(num) < spec.back_view_prob)
    yaw = (yaw + 180.0) % 360.0 - 180.0
    tilt = np.clip(draws.standard_normal((num, 2)), -3.0, 3.0) * spec.tilt_std
    return global_orient(yaw, tilt[:, 0], tilt[:, 1], base), yaw


def sample_global_orient(
    num: int, rng, yaw_range: tuple[float, float] = (-70.0, 70.0), back_view_prob: float = 0.1,
    tilt_std: float = 6.0, base_orient: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Orientations as :func:`draw_people` draws them, from any generator ``rng``:
    ``(num, 3)`` axis-angle and ``(num,)`` yaw in degrees."""
    spec = replace(PRESETS["regressor"], yaw_range=tuple(yaw_range), back_view_prob=back_view_prob,
                   tilt_std=tilt_std)  # fmt: skip
    base = np.zeros((num, 3)) if base_orient is None else np.asarray(base_orient, dtype=np.float64)
    return _draw_orientation(spec, base, rng)


def _draw_shape(spec: PeoplePreset, num: int, num_betas: int, draws) -> np.ndarray:
    betas = draws.standard_normal((num, num_betas)) * spec.shape_std
    return betas if spec.shape_clip is None else np.clip(betas, -spec.shape_clip, spec.shape_clip)


@dataclass
class Bodies:
    """People as parameters only (no camera). N people."""

    pose: np.ndarray  # (N, 72) axis-angle, camera orientation first
    betas: np.ndarray  # (N, S)
    yaw: np.ndarray  # (N,) degrees
    postures: list[str]


def draw_bodies(
    spec: PeoplePreset, count: int, seed: int = 0, num_betas: int = 10, *, start: int = 0,
    pool: PosePool | None = None, postures: Sequence[str] | None = None,
) -> Bodies:  # fmt: skip
    """Steps 1-3 of the module docstring for people ``start .. start + count`` of ``seed``."""
    if seed < 0 or start < 0 or count < 0:  # numpy's seeded generators take no negative words
        raise BadInputError(f"people are drawn for seed >= 0, start >= 0 and count >= 0; got seed {seed}, "
                            f"start {start}, count {count}")  # fmt: skip
    index = np.arange(start, start + count)
    poses = _draw_poses(spec, pool, seed, index, postures)
    orient, yaw = _draw_orientation(spec, poses.base_orient, KeyedDraws(seed, _ORIENT, index))
    betas = _draw_shape(spec, count, num_betas, KeyedDraws(seed, _SHAPE, index))
    return Bodies(np.concatenate([orient, poses.body_pose], 1), betas, yaw, poses.postures)


# ----------------------------------------------------------------------------------------
# Camera and framing


def frame_person(
    points: np.ndarray, focal_length: float, camera_center: np.ndarray, target_center: np.ndarray,
    target_size: float, tolerance: float = 1e-6, max_iterations: int = 100,
) -> np.ndarray:  # fmt: skip
    """Translation placing points so their projected box has a given centre and larger side.

    Args:
        points: ``(V, 3)`` body points in the camera orientation (no translation), metres.
        focal_length: pixels.
        camera_center: ``(2,)`` principal point.
        target_center: ``(2,)`` wanted centre of the projected bounding box.
        target_size: wanted larger side of the projected bounding box, pixels.
        tolerance: pixels.

    Returns:
        ``(3,)`` translation ``t`` (``points + t`` in the camera frame).
    """
    points = np.asarray(points, dtype=np.float64)
    target_center = np.asarray(target_center, dtype=np.float64)
    camera_center = np.asarray(camera_center, dtype=np.float64)
    middle = 0.5 * (points.min(0) + points.max(0))
    extent = float(np.ptp(points[:, :2], axis=0).max())
    # Start with the box centre's depth giving the wanted size, aimed at the target.
    depth = focal_length * extent / target_size - middle[2]
    depth = max(depth, float(-points[:, 2].min()) + 1e-2)
    lateral = (target_center - camera_center) * (depth + middle[2]) / focal_length - middle[:2]
    for _ in range(max_iterations):
        camera = points + np.array([lateral[0], lateral[1], depth])
        pixels = focal_length * camera[:, :2] / camera[:, 2:3] + camera_center
        low, high = pixels.min(0), pixels.max(0)
        size = float((high - low).max())
        center_error = 0.5 * (low + high) - target_center
        if abs(size - target_size) < tolerance and np.all(np.abs(center_error) < tolerance):
            break
        typical = depth + middle[2]
        # Re-aim (pixels move by f / Z per metre), then move along the line of sight so the
        # size scales as 1 / Z while the aim is kept.
        lateral = lateral - center_error * typical / focal_length
        factor = size / target_size
        new_depth = max(typical * factor - middle[2], float(-points[:, 2].min()) + 1e-2)
        factor = (new_depth + middle[2]) / typical
        lateral = (lateral + middle[:2]) * factor - middle[:2]
        depth = new_depth
    else:
        log.warning("frame_person did not converge to %.1e px", tolerance)
    return np.array([lateral[0], lateral[1], depth])


def _focal(spec: PeoplePreset) -> float:
    width, height = spec.image_size
    return float(np.hypot(width, height)) if spec.focal_length is None else float(spec.focal_length)


def _frame(spec: PeoplePreset, joints: np.ndarray, focal: float, principal: np.ndarray, draws):
    """Step 4: ``(N, 3)`` camera translations of body-frame joints ``(N, J, 3)`` and ``(N,)``
    bool, the people framed as detector-box crops (``box_share``)."""
    num = len(joints)
    size = np.array(spec.image_size, dtype=np.float64)
    if spec.framing == "crop":
        # Every draw is made for every person, so the share only picks between them.
        depth = draws.uniform(spec.depth_range[0], spec.depth_range[1], num)
        lateral = draws.normal(0.0, spec.lateral_std, (num, 2))
        boxed = draws.random(num) < spec.box_share
        fill = draws.uniform(spec.box_fill[0], spec.box_fill[1], num)
        offset = draws.uniform(-spec.box_offset, spec.box_offset, (num, 2)) * size.min()
        # A detector-box crop: the larger side of the keypoints' box fills ``fill`` of
        # crop / 1.2 (SPIN's padding). At these depths (tens of metres) the projection is
        # nearly orthographic, so the box at the root's depth is the projected box to ~2%.
        low, high = joints[..., :2].min(1), joints[..., :2].max(1)
        box_depth = focal * (high - low).max(-1) / (fill * size.min() / 1.2)
        box_lateral = -(low + high) / 2.0 + offset * box_depth[:, None] / focal
        transl = np.c_[lateral, depth]
        transl[boxed] = np.c_[box_lateral, box_depth][boxed]
        return transl, boxed
    sides = draws.uniform(spec.fill_range[0], spec.fill_range[1], num) * size.min() / 1.2
    offsets = draws.uniform(-1.0, 1.0, (num, 2)) * spec.placement
    transl = np.zeros((num, 3))
    for i in range(num):  # numpy's iterative framing, one body at a time
        room = size / 2.0 - 0.6 * sides[i]
        target = principal + offsets[i] * np.maximum(room, 0.0)
        transl[i] = frame_person(joints[i], focal, principal, target, sides[i])
    return transl, np.ones(num, dtype=bool)


# ----------------------------------------------------------------------------------------
# The core


@dataclass
class People:
    """Synthetic people and their keypoints. B people; tensors on the body model's device."""

    pose: torch.Tensor  # (B, 72) axis-angle, camera orientation first
    rotmat: torch.Tensor  # (B, 24, 3, 3) the same pose
    betas: torch.Tensor  # (B, S)
    transl: torch.Tensor  # (B, 3) camera translation, metres
    joints: torch.Tensor  # (B, 49, 3) body-frame keypoints, metres (add transl for the camera frame)
    clean: torch.Tensor  # (B, 49, 3) exact projections, pixels, confidence 1 everywhere
    inside: torch.Tensor  # (B, 49) bool: the projection lies in the image
    keypoints: torch.Tensor  # (B, 49, 3) what the detector gives (corrupted, blocks removed)
    focal_length: float  # pixels
    principal: tuple[float, float]  # principal point, pixels (the image centre)
    image_size: tuple[int, int]  # (width, height)
    yaw: np.ndarray  # (B,) degrees
    boxed: np.ndarray  # (B,) bool: framed by the person's keypoint box, not by depth
    postures: list[str]


def draw_people(
    body, spec: PeoplePreset | str, count: int, seed: int = 0, *, start: int = 0, pool: PosePool | None = None,
    corruption: CorruptionConfig | None = None, shift_px: tuple[float, float] = (0.0, 0.0),
    postures: Sequence[str] | None = None,
) -> People:  # fmt: skip
    """People ``start .. start + count`` of ``seed`` under preset ``spec`` (module docstring).

    Args:
        body: the :class:`~spin_diff.body.model.BodyModel` whose 49 keypoints are projected.
        spec: a :class:`PeoplePreset` or a name in :data:`PRESETS`.
        pool: the poses to draw from (None: fresh pose-sampler poses).
        corruption: replaces the preset's corruption (e.g. a benchmark's row).
        shift_px: every keypoint moved by this after projection (people partly out of the crop).
        postures: pose-sampler postures to draw (without a pool); None for all.
    """
    spec = preset(spec) if isinstance(spec, str) else spec
    if count < 0:
        raise BadInputError(f"count must be >= 0, got {count}")
    index = np.arange(start, start + count)
    bodies = draw_bodies(spec, count, seed, body.num_betas, start=start, pool=pool, postures=postures)
    device, dtype = body.fast.joint_template.device, body.fast.joint_template.dtype
    pose = torch.as_tensor(bodies.pose, dtype=dtype, device=device)
    betas = torch.as_tensor(bodies.betas, dtype=dtype, device=device)
    with torch.no_grad():
        rotmat = pose_to_rotmat(pose)
        joints = body.joints(rotmat, betas).joints
    joints_np = joints.double().cpu().numpy()

    width, height = spec.image_size
    focal, principal = _focal(spec), np.array([width / 2.0, height / 2.0])
    transl, boxed = _frame(spec, joints_np, focal, principal, KeyedDraws(seed, _FRAMING, index))
    camera = joints_np + transl[:, None]
    pixels = focal * camera[..., :2] / camera[..., 2:3] + principal + np.asarray(shift_px, dtype=np.float64)
    inside = (pixels >= 0).all(-1) & (pixels[..., 0] < width) & (pixels[..., 1] < height)
    clean = np.concatenate([pixels, np.ones((count, NUM_KEYPOINTS, 1))], -1)
    depth_px = focal * camera[..., 2] / camera[..., 2].mean(1, keepdims=True)  # pixels at the person's distance
    keypoints = _detect(spec, clean, corruption, seed, index, depth_px)
    as_tensor = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
    return People(
        pose=pose, rotmat=rotmat, betas=betas, transl=as_tensor(transl), joints=joints, clean=as_tensor(clean),
        inside=torch.as_tensor(inside, device=device), keypoints=as_tensor(keypoints), focal_length=focal,
        principal=(float(principal[0]), float(principal[1])), image_size=(int(width), int(height)),
        yaw=bodies.yaw, boxed=boxed, postures=bodies.postures,
    )  # fmt: skip


def _detect(
    spec: PeoplePreset, clean: np.ndarray, corruption, seed: int, index: np.ndarray, depth_px: np.ndarray
) -> np.ndarray:
    """Step 5: ``(N, 49, 3)`` clean keypoints -> what a detector gives; ``depth_px``: (N, 49)
    camera-frame depths in pixels at the person's distance (the face-hiding rule's units)."""
    num = len(clean)
    config = spec.corruption_config() if corruption is None else corruption
    width, height = spec.image_size
    if spec.corruption_box == "crop":
        centre, box = np.full((num, 2), [width / 2.0, height / 2.0]), np.full(num, float(min(width, height)))
    else:  # SPIN's box around the person: 1.2 x the keypoints' larger side
        low, high = clean[..., :2].min(1), clean[..., :2].max(1)
        centre, box = (low + high) / 2.0, 1.2 * (high - low).max(-1)
    detected = corrupt_keypoints(clean, centre, box, config, KeyedDraws(seed, _CORRUPTION, index),
                                 KEYPOINT_FLIP_PERM, image_size=np.array([width, height], dtype=np.float64)).keypoints  # fmt: skip
    which = KeyedDraws(seed, _BLOCKS, index).random(num)
    openpose_only = which < spec.openpose_only_prob
    gt_only = ~openpose_only & (which < spec.openpose_only_prob + spec.gt_only_prob)
    detected[openpose_only, NUM_OPENPOSE_JOINTS:] = 0.0
    detected[gt_only, :NUM_OPENPOSE_JOINTS] = 0.0
    if spec.face_hiding_prob > 0:
        hidden = hidden_by_head(clean[..., :2], depth_px, _EARS, _NOSE, _FACE_FRONT, _FACE_PAIRS)
        detected[hidden & (KeyedDraws(seed, _FACE, index).random(num) < spec.face_hiding_prob)[:, None]] = 0.0
    if spec.no_small_toes_prob > 0:
        detected[np.ix_(KeyedDraws(seed, _TOES, index).random(num) < spec.no_small_toes_prob, _SMALL_TOES)] = 0.0
    return detected
