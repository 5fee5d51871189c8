"""Per-sample Levenberg-Marquardt on a batched objective: ``optimizer: lm``.

Two solvers, both per sample (each sample its own damping and its own accept / reject
decision, so its result depends only on its own objective: no shared line search, unlike
``torch.optim.LBFGS``), both a fixed number of iterations with ``torch.where`` masks, no host
synchronisation and float64 normal equations solved by ``torch.linalg.cholesky_ex`` (a failed
factorisation counts as a rejected step):

- :func:`minimise_gauss_newton`, for a stage whose terms all have least-squares forms
  (SMPLify's: :mod:`spin_diff.fitting.least_squares`): the caller's ``linearise(x)`` gives
  the objective, its gradient and a Gauss-Newton Hessian in closed form (one kinematic-chain
  Jacobian, no autograd). It is evaluated once per iteration, at the trial point, which is also
  the next iteration's linearisation where the step is kept. The damping is Marquardt's, scaled
  by each parameter's curvature plus a floor (``fitting.lm_damping_floor`` times its group's
  mean curvature), so a direction the keypoints barely see, such as a torso's yaw in the camera
  stage, cannot take a huge step.
- :func:`minimise_per_sample`, the fallback for other terms: the exact per-sample Hessian by
  P batched Hessian-vector products (the objective is a sum of per-sample terms, so the
  Hessian of the batch sum is block diagonal), damped by ``lambda * (|diag(H)| + 1)``.

Lambda shrinks by ``down`` where a step is kept and grows by ``up`` where it is not. Terms
whose gradient is a network's score (``diffusion_pose``) would need double backward through
the network for the fallback and have no least-squares form: a stage with them keeps Adam.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def per_sample_hessian(objective: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor):
    """Value (B,), gradient (B, P) and Hessian (B, P, P) of a per-sample objective at ``x``."""
    x = x.detach().requires_grad_(True)
    value = objective(x)
    (grad,) = torch.autograd.grad(value.sum(), x, create_graph=True)
    batch, size = x.shape
    basis = torch.eye(size, dtype=x.dtype, device=x.device)[:, None, :].expand(size, batch, size)
    (hess,) = torch.autograd.grad(grad, x, grad_outputs=basis, is_grads_batched=True)
    return value.detach(), grad.detach(), hess.permute(1, 0, 2).detach()


def minimise_per_sample(
    objective: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    iterations: int,
    damping: float = 1.0,
    down: float = 0.3,
    up: float = 10.0,
    active: torch.Tensor | None = None,
):
    """Run ``iterations`` damped Newton steps per sample. Returns (x, accepted steps (B,))."""
    x = x0.detach().clone()
    batch = x.shape[0]
    lam = torch.full((batch,), damping, dtype=torch.float64, device=x.device)
    accepted = torch.zeros(batch, dtype=torch.long, device=x.device)
    active = torch.ones(batch, dtype=torch.bool, device=x.device) if active is None else active
    eye = torch.eye(x.shape[1], dtype=torch.float64, device=x.device)
    for _ in range(iterations):
        value, grad, hess = per_sample_hessian(objective, x)
        h = hess.double()
        h = 0.5 * (h + h.transpose(1, 2))
        scale = h.diagonal(dim1=1, dim2=2).abs() + 1.0
        damped = h + lam[:, None, None] * torch.diag_embed(scale) + 1e-12 * eye
        chol, info = torch.linalg.cholesky_ex(damped)
        step = -torch.cholesky_solve(grad.double()[..., None], chol)[..., 0]
        solved = (info == 0) & torch.isfinite(step).all(1)
        step = torch.where(solved[:, None], step, torch.zeros_like(step)).to(x.dtype)
        candidate = x + step
        with torch.no_grad():
            trial = objective(candidate)
        better = solved & active & torch.isfinite(trial) & (trial < value)
        x = torch.where(better[:, None], candidate, x)
        accepted += better.long()
        lam = torch.where(better, lam * down, lam * up).clamp(1e-12, 1e12)
    return x.detach(), accepted


def minimise_gauss_newton(
    linearise: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    x0: torch.Tensor,
    iterations: int,
    damping: float = 1e-3,
    down: float = 0.3,
    up: float = 10.0,
    active: torch.Tensor | None = None,
    groups: list[slice] | None = None,
    floor: float = 1e-2,
):
    """Levenberg-Marquardt on normal equations, per sample: ``linearise(x)`` gives the
    objective (B,), its gradient (B, P) and a positive semi-definite Hessian (B, P, P) (float64;
    :func:`spin_diff.fitting.least_squares.normal_equations`). One linearisation per iteration:
    the trial point's, which is also the next iteration's where the step is kept. Returns
    (x, accepted steps (B,))."""
    x = x0.detach().clone()
    batch = x.shape[0]
    lam = torch.full((batch,), damping, dtype=torch.float64, device=x.device)
    accepted = torch.zeros(batch, dtype=torch.long, device=x.device)
    active = torch.ones(batch, dtype=torch.bool, device=x.device) if active is None else active
    value, grad, hess = linearise(x)
    groups = [slice(0, x.shape[1])] if groups is None else groups
    for _ in range(iterations):
        diagonal = hess.diagonal(dim1=1, dim2=2)
        scale = torch.cat([diagonal[:, g] + floor * diagonal[:, g].mean(1, keepdim=True) for g in groups], 1)
        damped = hess.clone()
        damped.diagonal(dim1=1, dim2=2).add_(lam[:, None] * scale + 1e-12)
        chol, info = torch.linalg.cholesky_ex(damped)
        step = -torch.cholesky_solve(grad[..., None], chol)[..., 0]
        solved = (info == 0) & torch.isfinite(step).all(1)
        step = torch.where(solved[:, None], step, torch.zeros_like(step)).to(x.dtype)
        candidate = x + step
        trial, trial_grad, trial_hess = linearise(candidate)
        better = solved & active & torch.isfinite(trial) & (trial < value)
        x = torch.where(better[:, None], candidate, x)
        value = torch.where(better, trial, value)
        grad = torch.where(better[:, None], trial_grad, grad)
        hess = torch.where(better[:, None, None], trial_hess, hess, out=trial_hess)
        accepted += better.long()
        lam = torch.where(better, lam * down, lam * up).clamp(1e-12, 1e12)
    return x.detach(), accepted
