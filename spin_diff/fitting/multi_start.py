"""Several starts per sample, keeping the best fit: a fitting method around another one.

A cold start (the mean pose) often lands in the wrong basin: a sitting person fitted from
standing legs keeps them straight. :class:`MultiStart` fits each sample from its given start
and from copies with a few joints set to other postures (:data:`START_HYPOTHESES`), all in
one batch (hypothesis-major: rows ``k * B + i`` are sample i's k-th start), and keeps per
sample the fit with the lowest final-stage objective (:func:`select_fits`). Every start of a
sample shares its noise seed and its features, so the choice stays per sample.
"""

from __future__ import annotations

from typing import Sequence

import torch

from spin_diff.body.joints import SMPL_JOINT_NAMES
from spin_diff.body.model import pose_to_rotmat
from spin_diff.errors import BadInputError
from spin_diff.fitting.base import FitResult, Fitter
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


def hypothesis_starts(init_pose: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
    """(K, B, 24, 3, 3): the start ``init_pose`` (B, 24, 3, 3), then one copy per name with
    that hypothesis' joints replaced."""
    unknown = [n for n in names if n not in START_HYPOTHESES]
    if unknown:
        raise BadInputError(f"fitting.start_hypotheses: unknown {unknown}; known: {sorted(START_HYPOTHESES)}")
    starts = [init_pose]
    for name in names:
        pose = init_pose.clone()
        for joint, rotation in START_HYPOTHESES[name].items():
            pose[:, SMPL_JOINT_NAMES.index(joint)] = axis_angle_to_matrix(torch.tensor(rotation)).to(pose)
        starts.append(pose)
    return torch.stack(starts)


def select_fits(result: FitResult, count: int) -> tuple[FitResult, torch.Tensor]:
    """Per sample, the hypothesis with the lowest final-stage objective among ``count``
    stacked along the batch (hypothesis-major). Failed fits never win over working ones.
    Returns the selected FitResult (batch B) and the winning hypothesis index (B,)."""
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
        add up every start's."""
        count = 1 + len(self.hypotheses)
        starts = hypothesis_starts(pose_to_rotmat(init_pose, "init_pose"), self.hypotheses).flatten(0, 1)

        def repeat(x):
            if not isinstance(x, torch.Tensor) or x.ndim == 0:
                return x  # None, or one value for every sample
            return x.repeat(count, *([1] * (x.ndim - 1)))

        result = self.method.fit(
            repeat(keypoints), starts, repeat(init_betas), repeat(init_transl),
            camera_center=repeat(camera_center), focal_length=repeat(focal_length),
            sample_seeds=repeat(sample_seeds), condition=repeat(condition),
        )  # fmt: skip
        if count > 1:
            result, _ = select_fits(result, count)
        return result
