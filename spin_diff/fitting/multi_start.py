"""Several starts per sample, keeping the best fit: a fitting method around another one.

A cold start (the mean pose) often lands in the wrong basin: a sitting person fitted from
standing legs keeps them straight. A regressor's prediction can be wrong as a whole: the body
turned front to back, or a pose so far off that the mean pose is the better start.
:class:`MultiStart` fits each sample from its given start and from the named hypotheses, all
in one batch (hypothesis-major: rows ``k * B + i`` are sample i's k-th start), and keeps per
sample the fit that scores best (:func:`selection_scores`, :func:`select_fits`; no ground
truth). The hypotheses are copies of the start with a few joints set to other postures
(:data:`START_HYPOTHESES`) or other whole starts (:data:`OTHER_STARTS`). Every start of a
sample shares its noise seed and its features, so the choice stays per sample.
"""

from __future__ import annotations

from typing import Sequence

import torch

from spin_diff.body.joints import SMPL_JOINT_NAMES, SMPL_PARENTS
from spin_diff.body.model import pose_to_rotmat
from spin_diff.errors import BadInputError
from spin_diff.fitting.base import FitResult, Fitter
from spin_diff.fitting.smplify import gmm_prior_for
from spin_diff.geometry.rotations import axis_angle_to_matrix

# Extra starts: the given start with these joints (SMPL names) set to these axis-angles.
# Signs as in spin_diff.body.demo_poses: a knee's positive x rotation bends the shin back, a
# hip's negative x rotation swings the thigh forward.
START_HYPOTHESES: dict[str, dict[str, tuple[float, float, float]]] = {
    "knees_bent": {"left_knee": (1.6, 0.0, 0.0), "right_knee": (1.6, 0.0, 0.0)},
    "crouch": {
        "left_hip": (-1.6, 0.0, 0.0), "right_hip": (-1.6, 0.0, 0.0),
        "left_knee": (2.0, 0.0, 0.0), "right_knee": (2.0, 0.0, 0.0),
    },
    # from arms down, raised hands are reached by arching the back, not by lifting the arms
    "arms_up": {"left_shoulder": (0.0, 0.0, 1.0), "right_shoulder": (0.0, 0.0, -1.0)},
}  # fmt: skip


# Depth flips of a limb (Taylor's ambiguity: a bone's image fixes its depth up to sign). Each
# names a chain (the joint that turns the first bone, the joint that turns the second, the end
# joint) and which of the two bones has the sign of its depth (its camera z) flipped, the other
# keeping its direction in the camera frame, so the start's 2D joints stay where they were. A
# regressor trained on common poses puts an arm seen from behind in front of the body, as a
# hand held at a bar behind the neck projects to the same pixels.
_ARM = {"left": ("left_shoulder", "left_elbow", "left_wrist"), "right": ("right_shoulder", "right_elbow", "right_wrist")}
_LEG = {"left": ("left_hip", "left_knee", "left_ankle"), "right": ("right_hip", "right_knee", "right_ankle")}
DEPTH_FLIPS: dict[str, tuple[tuple[str, str, str], tuple[bool, bool]]] = {
    f"flip_{side}_{part}": (chains[side], flips)
    for chains, parts in ((_ARM, ("upper_arm", "forearm", "arm")), (_LEG, ("thigh", "shin", "leg")))
    for side in ("left", "right")
    for part, flips in zip(parts, ((True, False), (False, True), (True, True)))
}


# Other whole starts for the same person, beside the joint tweaks above:
#   flipped: the given start turned 180 degrees about the camera's vertical axis (a regressor's
#     front/back mistake; SMPLify-X tries it in its camera stage, here the whole fit runs);
#   mean_pose: the body model's mean pose with zero betas (the cold-start recipe's start; the
#     pose anchor is off from it, spin_diff.fitting.base.FittingMethod.informative_start).
OTHER_STARTS = ("flipped", "mean_pose")
_HALF_TURN_ABOUT_Y = (0.0, torch.pi, 0.0)


def hypothesis_starts(
    init_pose: torch.Tensor, names: Sequence[str], mean_pose: torch.Tensor | None = None,
    rest_joints: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """(K, B, 24, 3, 3): the start ``init_pose`` (B, 24, 3, 3), then one start per name: the
    start with that hypothesis' joints replaced, one of :data:`OTHER_STARTS` (``mean_pose``
    needs ``mean_pose`` (B, 24, 3, 3)) or a limb's depth flip (:data:`DEPTH_FLIPS`; needs the
    body model's ``rest_joints`` (24, 3) for the bones' directions)."""
    known = [*START_HYPOTHESES, *OTHER_STARTS, *DEPTH_FLIPS]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BadInputError(f"fitting.start_hypotheses: unknown {unknown}; known: {known}")
    if "mean_pose" in names and mean_pose is None:
        raise BadInputError("the mean_pose start hypothesis needs the body model's mean pose (mean_pose=...)")
    if any(n in DEPTH_FLIPS for n in names) and rest_joints is None:
        raise BadInputError("a depth-flip start hypothesis needs the body model's rest joints (rest_joints=...)")
    starts = [init_pose]
    for name in names:
        pose = init_pose.clone()
        if name == "flipped":
            turn = axis_angle_to_matrix(torch.tensor(_HALF_TURN_ABOUT_Y)).to(pose)
            pose[:, 0] = turn @ pose[:, 0]
        elif name == "mean_pose":
            pose = mean_pose.to(pose).expand_as(pose).clone()
        elif name in DEPTH_FLIPS:
            chain, flips = DEPTH_FLIPS[name]
            pose = depth_flipped(pose, [SMPL_JOINT_NAMES.index(j) for j in chain], flips, rest_joints.to(pose))
        else:
            for joint, rotation in START_HYPOTHESES[name].items():
                pose[:, SMPL_JOINT_NAMES.index(joint)] = axis_angle_to_matrix(torch.tensor(rotation)).to(pose)
        starts.append(pose)
    return torch.stack(starts)


def global_rotations(pose: torch.Tensor) -> torch.Tensor:
    """(B, 24, 3, 3) each joint's rotation in the camera frame, down SMPL's tree."""
    out = [pose[:, 0]]
    for joint in range(1, pose.shape[1]):
        out.append(out[SMPL_PARENTS[joint]] @ pose[:, joint])
    return torch.stack(out, 1)


def rotation_between(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) the smallest rotation turning direction ``u`` (B, 3) into ``v`` (B, 3); for
    opposite directions a half turn about an axis perpendicular to ``u``."""
    u = u / u.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cos = (u * v).sum(-1)
    axis = torch.cross(u, v, dim=-1)
    # opposite: any axis perpendicular to u (u x x, or u x y where u is near x)
    ex, ey = torch.zeros_like(u), torch.zeros_like(u)
    ex[:, 0], ey[:, 1] = 1.0, 1.0
    perpendicular = torch.where((u[:, :1].abs() < 0.9), torch.cross(u, ex, dim=-1), torch.cross(u, ey, dim=-1))
    opposite = cos < -1 + 1e-6
    axis = torch.where(opposite[:, None], perpendicular / perpendicular.norm(dim=-1, keepdim=True), axis)
    sin = axis.norm(dim=-1).clamp_min(1e-12)
    angle = torch.atan2(torch.where(opposite, torch.zeros_like(sin), sin), cos)
    unit = axis / sin[:, None]
    return axis_angle_to_matrix(torch.where((sin > 1e-9)[:, None], unit * angle[:, None], torch.zeros_like(unit)))


def depth_flipped(pose: torch.Tensor, chain: Sequence[int], flips: tuple[bool, bool], rest_joints: torch.Tensor) -> torch.Tensor:
    """``pose`` (B, 24, 3, 3) with the limb ``chain`` (joints a, b, c: a turns bone a->b, b
    turns bone b->c) turned so that each flipped bone's camera-frame direction has the sign of
    its depth reversed and the other bone keeps its direction: the same 2D joints under an
    orthographic camera, the other of Taylor's two depths. The children of c keep their local
    rotations."""
    a, b, c = chain
    parent = SMPL_PARENTS[a]
    glob = global_rotations(pose)
    bone1 = (rest_joints[b] - rest_joints[a]).expand(pose.shape[0], 3)
    bone2 = (rest_joints[c] - rest_joints[b]).expand(pose.shape[0], 3)
    mirror = torch.tensor([1.0, 1.0, -1.0], dtype=pose.dtype, device=pose.device)
    d1 = (glob[:, a] @ bone1[..., None])[..., 0]
    d2 = (glob[:, b] @ bone2[..., None])[..., 0]
    target1 = d1 * mirror if flips[0] else d1
    target2 = d2 * mirror if flips[1] else d2
    new_a = rotation_between(d1, target1) @ glob[:, a]
    moved_b = new_a @ pose[:, b]
    new_b = rotation_between((moved_b @ bone2[..., None])[..., 0], target2) @ moved_b
    out = pose.clone()
    out[:, a] = glob[:, parent].transpose(-1, -2) @ new_a
    out[:, b] = new_a.transpose(-1, -2) @ new_b
    return out


def selection_scores(result: FitResult, config, gmm=None) -> torch.Tensor:
    """(rows,) what :func:`select_fits` minimises, per ``config.hypothesis_selection``: the
    final-stage objective, or the body-stage reprojection score plus
    ``config.hypothesis_prior_weight`` times the GMM pose energy (``gmm`` needed then)."""
    if config.hypothesis_selection == "objective":
        return list(result.stage_losses.values())[-1] if result.stage_losses else result.score
    if config.hypothesis_selection != "reprojection_prior":
        raise BadInputError(
            f"fitting.hypothesis_selection must be 'objective' or 'reprojection_prior', got "
            f"{config.hypothesis_selection!r}"
        )
    weight = float(config.hypothesis_prior_weight)
    if weight == 0:
        return result.score
    if gmm is None:
        raise BadInputError("fitting.hypothesis_prior_weight > 0 needs the GMM pose prior (gmm_08.pkl)")
    with torch.no_grad():
        return result.score + weight * gmm(result.pose[:, 3:].to(result.score.device))


def select_fits(
    result: FitResult, count: int, scores: torch.Tensor | None = None, names: Sequence[str] | None = None
) -> tuple[FitResult, torch.Tensor]:
    """Per sample, the hypothesis with the lowest ``scores`` (default: the final-stage
    objective) among ``count`` stacked along the batch (hypothesis-major). Failed fits never
    win over working ones. ``names`` (``count``) label the winners in ``FitResult.hypothesis``.
    Returns the selected FitResult (batch B) and the winning hypothesis index (B,)."""
    final = scores
    if final is None:
        final = list(result.stage_losses.values())[-1] if result.stage_losses else result.score
    batch = result.pose.shape[0] // count
    loss = torch.where(result.success, final, torch.full_like(final, float("inf"))).view(count, batch)
    best = torch.nan_to_num(loss, nan=float("inf")).argmin(0)
    rows = best * batch + torch.arange(batch, device=best.device)
    pick = lambda x: x[rows]  # noqa: E731
    winners = rows.cpu().tolist()
    selected = FitResult(
        pose=pick(result.pose), betas=pick(result.betas), transl=pick(result.transl), score=pick(result.score),
        initial_score=pick(result.initial_score), joint_losses=pick(result.joint_losses),
        joint_residuals=pick(result.joint_residuals), success=pick(result.success),
        failure=[result.failure[r] for r in winners], iterations=result.iterations.view(count, batch).sum(0),
        flipped=pick(result.flipped), stage_losses={k: pick(v) for k, v in result.stage_losses.items()},
        hypothesis=None if names is None else [names[r // batch] for r in winners],
    )  # fmt: skip
    return selected, best


class MultiStart:
    """``method`` fitted from each sample's start and from the named hypotheses
    (``config.start_hypotheses``, names in :data:`START_HYPOTHESES`); the best fit per sample.

    With no hypotheses it is ``method`` itself. :attr:`config` is the method's.
    """

    def __init__(self, method: Fitter, hypotheses: Sequence[str] | None = None) -> None:
        self.method = method
        self.config = method.config
        self.hypotheses = list(self.config.start_hypotheses if hypotheses is None else hypotheses)
        self._selection_gmm = None

    @property
    def names(self) -> list[str]:
        """The starts in batch order: ``"given"`` then the hypotheses."""
        return ["given", *self.hypotheses]

    def fit(
        self,
        keypoints: torch.Tensor,
        init_pose: torch.Tensor,
        init_betas: torch.Tensor,
        init_transl: torch.Tensor | None = None,
        camera_center: torch.Tensor | None = None,
        focal_length=None,
        *,
        sample_seeds: torch.Tensor | None = None,
        condition: torch.Tensor | None = None,
    ) -> FitResult:
        """Arguments as :meth:`spin_diff.fitting.base.FittingMethod.fit`; a per-sample
        ``focal_length`` must be a (B,) tensor. The result has batch B; its ``iterations``
        add up every start's, its ``hypothesis`` names each winner."""
        result = self.fit_all(
            keypoints, init_pose, init_betas, init_transl, camera_center, focal_length,
            sample_seeds=sample_seeds, condition=condition,
        )  # fmt: skip
        if not self.hypotheses:
            return result
        scores = selection_scores(result, self.config, self._gmm())
        return select_fits(result, len(self.names), scores, self.names)[0]

    def fit_all(
        self,
        keypoints: torch.Tensor,
        init_pose: torch.Tensor,
        init_betas: torch.Tensor,
        init_transl: torch.Tensor | None = None,
        camera_center: torch.Tensor | None = None,
        focal_length=None,
        *,
        sample_seeds: torch.Tensor | None = None,
        condition: torch.Tensor | None = None,
    ) -> FitResult:
        """Every start's fit, batch K * B hypothesis-major (K = ``len(self.names)``)."""
        count = len(self.names)
        init_rot = pose_to_rotmat(init_pose, "init_pose")
        mean_pose = None
        if "mean_pose" in self.hypotheses:
            mean_pose = self.method.body.mean_pose_rotmat(init_rot.shape[0]).to(init_rot)
        rest = None
        if any(name in DEPTH_FLIPS for name in self.hypotheses):
            rest = self.method.body.fast.joint_template
        starts = hypothesis_starts(init_rot, self.hypotheses, mean_pose, rest).flatten(0, 1)

        def repeat(x):
            if not isinstance(x, torch.Tensor) or x.ndim == 0:
                return x  # None, or one value for every sample
            return x.repeat(count, *([1] * (x.ndim - 1)))

        betas = torch.cat([torch.zeros_like(init_betas) if name == "mean_pose" else init_betas
                           for name in self.names])  # fmt: skip
        return self.method.fit(
            repeat(keypoints), starts, betas, repeat(init_transl),
            camera_center=repeat(camera_center), focal_length=repeat(focal_length),
            sample_seeds=repeat(sample_seeds), condition=repeat(condition),
        )  # fmt: skip

    def _gmm(self):
        """The GMM that scores hypotheses, when the selection needs it (the method's own if loaded)."""
        cfg = self.config
        if cfg.hypothesis_selection != "reprojection_prior" or cfg.hypothesis_prior_weight == 0:
            return None
        if self._selection_gmm is None:
            context = getattr(self.method, "context", None)
            self._selection_gmm = getattr(context, "gmm", None) or gmm_prior_for(cfg, self.method.body)
        return self._selection_gmm
