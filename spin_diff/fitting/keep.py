"""Which of two fits of an example is better: the keep rules of the fit store.

SPIN keeps a new in-loop fit when its reprojection score (the body stage's robust data term,
mean over the 49 joints: :meth:`FittingMethod.score`) is lower than the stored fit's, and lets
a fit supervise when that score is under ``fitting.threshold``. A prior term that trades
reprojection for plausibility loses that comparison by construction. The rules here
(``fitting.keep``) score both fits the same way, in the same view:

- ``reprojection`` (SPIN's): the reprojection score alone.
- ``objective`` (the fit's own objective, as CamSMPLify accepts a fit on its total loss): the
  reprojection score plus the body stage's deterministic prior energies (GMM, angle, shape,
  each with its stage weight) divided by the 49 joints, i.e. the body stage's objective per
  joint without the pose anchor (it depends on where a fit started) and without the diffusion
  term (a stochastic surrogate, not an energy). ``fitting.threshold`` then bounds that total.

Either rule takes a plausibility gate (``fitting.plausibility_gate``): a fit whose unweighted
GMM energy is above it scores +inf, so it neither replaces a stored fit nor supervises.

A store remembers the rule its scores were written under (:func:`rule_description`, recorded by
:meth:`spin_diff.cache.store.FitStore.claim_score_rule`); a run under another rule is refused
with both named, so scores of two rules are never compared.
"""

from __future__ import annotations

import torch

from spin_diff.constants import NUM_KEYPOINTS
from spin_diff.errors import BadInputError
from spin_diff.fitting.smplify import gmm_prior_for
from spin_diff.priors.angle import angle_prior

__all__ = ["KEEP_RULES", "PRIOR_TERMS", "KeepRule", "body_stage_priors", "keep_score", "prior_energy", "rule_description"]

KEEP_RULES = ("reprojection", "objective")
#: the deterministic prior terms the ``objective`` rule adds, by their fitting-term names
PRIOR_TERMS = ("gmm_pose", "angle", "shape")


def body_stage_priors(config) -> dict[str, float]:
    """The prior weights of the last stage with a reprojection term (the body stage):
    {term: weight} over :data:`PRIOR_TERMS` (a ``FittingConfig``)."""
    body = [s for s in config.stages if any(name.startswith("reprojection") for name in s.terms)]
    if not body:
        return {}
    return {name: float(w) for name, w in body[-1].terms.items() if name in PRIOR_TERMS and w != 0}


def prior_energy(weights: dict[str, float], gmm, body_pose: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """sum of weight * term over ``weights`` at body_pose (B, 69), betas (B, S): (B,)."""
    total = body_pose.new_zeros(body_pose.shape[0])
    if "gmm_pose" in weights:
        if gmm is None:
            raise BadInputError("fitting.keep: objective needs the GMM pose prior of the body stage; none is loaded")
        total = total + weights["gmm_pose"] * gmm(body_pose)
    if "angle" in weights:
        total = total + weights["angle"] * angle_prior(body_pose)
    if "shape" in weights:
        total = total + weights["shape"] * betas.square().sum(-1)
    return total


def keep_score(
    rule: str, reprojection: torch.Tensor, body_pose: torch.Tensor, betas: torch.Tensor,
    weights: dict[str, float], gmm=None, gate: float | None = None,
) -> torch.Tensor:  # fmt: skip
    """The score (B,) a keep rule compares, lower is better, from SPIN's reprojection score
    (B,) of the same parameters in the same view: see the module docstring."""
    if rule not in KEEP_RULES:
        raise BadInputError(f"fitting.keep must be one of {', '.join(KEEP_RULES)}, got {rule!r}")
    score = reprojection
    if rule == "objective":
        score = score + prior_energy(weights, gmm, body_pose.to(score), betas.to(score)) / NUM_KEYPOINTS
    if gate is not None:
        if gmm is None:
            raise BadInputError("fitting.plausibility_gate needs the GMM pose prior (gmm_pose in the body stage)")
        implausible = gmm(body_pose.to(score)) > gate
        score = torch.where(implausible, torch.full_like(score, float("inf")), score)
    return score


def rule_description(rule: str, weights: dict[str, float]) -> dict:
    """What a store records of the rule its scores were written under (JSON-able): the rule,
    and for ``objective`` the prior weights that enter its scores. The gate is not part of it:
    it only refuses fits, and every stored score stays a score of the rule."""
    if rule == "reprojection":
        return {"rule": "reprojection"}
    return {"rule": rule, "weights": {name: round(weights[name], 6) for name in sorted(weights)}}


class KeepRule:
    """A keep rule bound to its priors: ``rule(reprojection, body_pose, betas) -> score``."""

    def __init__(self, rule: str = "reprojection", weights: dict[str, float] | None = None, gmm=None,
                 gate: float | None = None) -> None:  # fmt: skip
        if rule not in KEEP_RULES:
            raise BadInputError(f"fitting.keep must be one of {', '.join(KEEP_RULES)}, got {rule!r}")
        self.rule, self.weights, self.gmm, self.gate = rule, dict(weights or {}), gmm, gate

    @classmethod
    def of_stages(cls, config, body, rule: str = "reprojection", gate: float | None = None, gmm=None) -> "KeepRule":
        """The rule with the prior weights of ``config``'s body stage (a ``FittingConfig``) and
        ``gmm`` (the fit's loaded GMM; SMPLify's GMM file is loaded when it is None and needed)."""
        weights = body_stage_priors(config) if rule == "objective" else {}
        if gmm is None and (gate is not None or "gmm_pose" in weights):
            gmm = gmm_prior_for(config, body)
        return cls(rule, weights, gmm, gate)

    def __call__(self, reprojection: torch.Tensor, body_pose: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        return keep_score(self.rule, reprojection, body_pose, betas, self.weights, self.gmm, self.gate)

    def description(self) -> dict:
        return rule_description(self.rule, self.weights)

    def without_gate(self, reprojection: torch.Tensor, body_pose: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        """The rule's score with no gate (ground truth is kept whatever the prior thinks of it)."""
        return keep_score(self.rule, reprojection, body_pose, betas, self.weights, self.gmm, None)
