"""Looking at what a prior has learned: sampled poses on the body model, as a picture grid."""

from __future__ import annotations

import numpy as np
import torch

from spin_diff.diffusion.model import DiffusionPrior
from spin_diff.diffusion.representation import upright_orientation
from spin_diff.render.views import image_grid, render_views


def sample_poses(prior: DiffusionPrior, n: int, seed: int = 0, step: int = 20) -> torch.Tensor:
    """``n`` poses drawn from the prior by DDIM: (n, 24, 3, 3), orientation in the camera
    frame (for ``canonical`` priors: facing the camera; for ``none``: upright, facing)."""
    generator = torch.Generator(device=prior.alpha_bars.device).manual_seed(seed)
    x = prior.sample(n, step=step, generator=generator)
    rotmats, _ = prior.decode(x, orient=upright_orientation(n, x))
    return rotmats


def render_pose_grid(
    rotmats: torch.Tensor, body_model, columns: int = 4, size: int = 240, yaws: tuple[float, ...] = (0.0, 90.0)
) -> np.ndarray:
    """Each pose from the front and the side (a pair of tiles), ``columns`` pairs per row.

    Orientations are camera-frame; they are turned back to the upright world (y up) the
    renderer expects, so a tilted sample shows tilted. -> (H, W, 3) uint8.
    """
    n = rotmats.shape[0]
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=rotmats.dtype))
    world = rotmats.clone()
    world[:, 0] = flip @ rotmats[:, 0]  # R_x(pi)^T = diag(1, -1, -1)
    dtype = body_model.fast.joint_template.dtype
    with torch.no_grad():
        vertices = body_model(world.to(dtype), torch.zeros(n, body_model.num_betas, dtype=dtype), check_finite=False).vertices
    tiles = [render_views(v.cpu().numpy(), body_model.faces, yaws=yaws, size=size) for v in vertices]
    return image_grid(tiles, columns=columns, pad=4)
