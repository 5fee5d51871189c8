"""The diffusion prior as a term of the SMPLify objective (score distillation, DPoser-style).

At each optimiser step the current pose x is noised to a small level t (decreasing over the
stage: ``t = t_max - (t_max - t_min) * progress``), denoised once without gradient, and the
term is ``||x - x0_hat||^2`` with ``x0_hat`` held fixed. Its gradient ``2 (x - x0_hat)`` is,
averaged over the noise, ``-2 (1 - alpha_bar) / alpha_bar * score`` to first order in the
noise (Tweedie), so descending it moves the pose toward higher prior likelihood.

The target is drawn once per optimiser step (a new ``progress``): once per Adam iteration,
and once per L-BFGS step, so that inside an L-BFGS line search the term is an exact
quadratic. The denoiser runs under ``torch.no_grad``; the timestep is a Python int and the
noise is hashed on the device, so the term adds no host synchronisation.

Batch invariance: the noise of a sample is a pure function of its seed (``state.sample_seed``,
one int64 per sample; the config's ``seed`` for every sample when none is given), the stage
and the step, and the element (:mod:`spin_diff.utils.seeds`). A sample's fit is
therefore the same alone, at any row of any batch, and in the orientation-flip trial's
doubled batch.

A conditional prior gets each sample's regressor features from ``state.condition`` (B, F),
prepared by ``SMPLify.fit`` (:func:`spin_diff.diffusion.conditioning.prepare_condition`);
None runs it unconditionally.
"""

from __future__ import annotations

import torch

from spin_diff.diffusion.config import DiffusionFitConfig
from spin_diff.diffusion.model import DiffusionPrior
from spin_diff.diffusion.representation import project_to_rotations
from spin_diff.diffusion.schedule import q_sample
from spin_diff.errors import BadInputError
from spin_diff.geometry.rotations import axis_angle_to_matrix
from spin_diff.utils.seeds import keyed_normal


@torch.no_grad()
def distillation_target(
    prior: DiffusionPrior,
    x: torch.Tensor,
    t: int,
    noise: torch.Tensor,
    cond: torch.Tensor | None = None,
    project=project_to_rotations,
) -> torch.Tensor:
    """x0-hat of x noised to level t with ``noise``: (B, D) -> (B, D), no gradient.

    ``project`` maps the estimate back onto valid data (default: re-orthonormalise every 6D
    slot); None leaves it raw (toy data).
    """
    x = x.detach()
    _, x0_hat = prior.denoise(q_sample(prior.alpha_bars.to(x.dtype), x, t, noise), t, cond)
    return project(x0_hat) if project is not None else x0_hat


def score_distillation_loss(
    prior: DiffusionPrior, x: torch.Tensor, t: int, noise: torch.Tensor, cond=None, project=project_to_rotations
) -> torch.Tensor:
    """Per-sample ``||x - x0_hat||^2`` with x0_hat fixed: (B, D) -> (B,). Differentiable in x."""
    return ((x - distillation_target(prior, x, t, noise, cond, project)) ** 2).sum(-1)


class DiffusionPoseTerm:
    """The ``diffusion_pose`` fitting term: ``term(state) -> (B,)``. See the module doc."""

    def __init__(self, prior: DiffusionPrior, settings: DiffusionFitConfig | None = None) -> None:
        self.prior = prior
        self.settings = settings or DiffusionFitConfig()
        s = self.settings
        if not 0 <= s.term_t_min <= s.term_t_max < prior.timesteps:
            raise BadInputError(
                f"fitting.diffusion: need 0 <= term_t_min <= term_t_max < {prior.timesteps}, "
                f"got {s.term_t_min} and {s.term_t_max}"
            )
        self._key = None
        self._target: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget the cached target: called at the start of every fit."""
        self._key = None
        self._target = None

    def timestep(self, progress: float) -> int:
        s = self.settings
        return int(round(s.term_t_max - (s.term_t_max - s.term_t_min) * min(max(progress, 0.0), 1.0)))

    def encode(self, global_orient: torch.Tensor, body_pose: torch.Tensor, betas: torch.Tensor | None = None):
        """Axis-angle (B, 3), (B, 69) -> the prior's x (B, D) in the prior's dtype."""
        rotmats = axis_angle_to_matrix(torch.cat([global_orient, body_pose], 1).view(-1, 24, 3))
        dtype = self.prior.alpha_bars.dtype
        shape = None
        if self.prior.config.use_betas:
            shape = torch.nn.functional.pad(betas[:, :10], (0, max(0, 10 - betas.shape[1]))).to(dtype)
        x, _ = self.prior.encode(rotmats.to(dtype), shape)
        return x

    def noise(self, seeds: torch.Tensor | None, stage_index: int, progress: float, like: torch.Tensor):
        """The noise of one step, (B, D) like ``like``: keyed by each sample's seed, the stage
        and the step (``progress``), never by the batch."""
        if seeds is None:
            seeds = torch.zeros(like.shape[0], dtype=torch.int64, device=like.device)
        step = int(round(min(max(progress, 0.0), 1.0) * (1 << 30)))
        stream = (int(self.settings.seed) << 40) ^ (int(stage_index) << 31) ^ step
        return keyed_normal(seeds.to(like.device), stream, like.shape[1], like.dtype)

    def __call__(self, state) -> torch.Tensor:
        x = self.encode(state.global_orient, state.body_pose, state.betas)
        key = (state.stage_index, float(state.progress), tuple(x.shape))
        if key != self._key:
            noise = self.noise(getattr(state, "sample_seed", None), state.stage_index, state.progress, x)
            cond = getattr(state, "condition", None)
            self._target = distillation_target(self.prior, x, self.timestep(state.progress), noise, cond)
            self._key = key
        return ((x - self._target) ** 2).sum(-1).to(state.global_orient.dtype)
