"""SMPLify's Gaussian-mixture pose prior: the ``gmm_08.pkl`` file format and the max-mixture value.

SMPLify (and SPIN, which runs it in its training loop) scores a body pose (the 69 axis-angle
numbers of joints 1..23, no global orientation) by the best single component of an 8-component
Gaussian mixture::

    E(x) = min_k  0.5 (x - mu_k)^T Sigma_k^-1 (x - mu_k)
                  - log( w_k / ((2 pi)^(D/2) sqrt(det Sigma_k) / min_j sqrt(det Sigma_j)) )

The mixture lives in ``gmm_08.pkl``: a dict with ``means`` (K, D), ``covars`` (K, D, D) and
``weights`` (K,), float64, pickled by Python 2. SMPLify's file is non-commercial and does not
ship with this project; :data:`BUNDLED_GMM` is a free mixture in the same format, fitted to
poses of :mod:`spin_diff.priors.pose_sampler` (``scripts/build_free_priors.py``).
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spin_diff.errors import BadInputError
from spin_diff.utils.portable_pickle import dump_portable

__all__ = [
    "BUNDLED_GMM",
    "GMMFileError",
    "GMMParams",
    "MaxMixturePrior",
    "load_gmm_prior",
    "read_gmm_file",
    "write_gmm_file",
]

BUNDLED_GMM = Path(__file__).resolve().parents[1] / "body" / "assets" / "free_body" / "gmm_08.pkl"

_HOW_TO_FIX = (
    "use SMPLify's gmm_08.pkl (from the SMPLify or SPIN data downloads), fit one to your own poses "
    "with `spin-diff prior fit-gmm`, or leave the path out to use the bundled prior"
)


class GMMFileError(BadInputError):
    """A Gaussian-mixture file is unreadable or its content is inconsistent."""


@dataclass
class GMMParams:
    """A full-covariance Gaussian mixture. K components in D dimensions, float64 arrays."""

    means: np.ndarray  # (K, D)
    covars: np.ndarray  # (K, D, D), symmetric positive definite
    weights: np.ndarray  # (K,), positive, summing to 1 for a fitted mixture

    @property
    def num_components(self) -> int:
        return int(self.means.shape[0])

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def validate(self, source: str = "GMM parameters") -> "GMMParams":
        """Check shapes, finiteness, positive weights and positive-definite covariances.

        Returns a copy as contiguous float64 with exactly symmetric covariances.
        Raises:
            GMMFileError: naming ``source`` and what is wrong.
        """
        # Copies: arrays unpickled from raw bytes are read-only.
        means = np.array(self.means, dtype=np.float64)
        covars = np.array(self.covars, dtype=np.float64)
        weights = np.array(self.weights, dtype=np.float64).reshape(-1)
        if means.ndim != 2:
            raise GMMFileError(f"{source}: means must be (K, D), got shape {means.shape}")
        k, d = means.shape
        if covars.shape != (k, d, d):
            raise GMMFileError(
                f"{source}: covars must be (K, D, D) = ({k}, {d}, {d}) to match means {means.shape}, "
                f"got {covars.shape}"
            )
        if weights.shape != (k,):
            raise GMMFileError(
                f"{source}: weights must be ({k},) to match means {means.shape}, got {weights.shape}"
            )
        for name, value in (("means", means), ("covars", covars), ("weights", weights)):
            if not np.all(np.isfinite(value)):
                raise GMMFileError(f"{source}: {name} contains NaN or inf")
        if np.any(weights <= 0):
            shown = np.array2string(weights, precision=4)
            raise GMMFileError(f"{source}: weights must all be positive, got {shown}")
        scale = np.abs(covars).max(axis=(1, 2), keepdims=True) + 1e-300
        asymmetry = np.abs(covars - covars.transpose(0, 2, 1)) / scale
        if asymmetry.max() > 1e-6:
            bad = int(asymmetry.max(axis=(1, 2)).argmax())
            raise GMMFileError(f"{source}: covariance {bad} is not symmetric")
        covars = 0.5 * (covars + covars.transpose(0, 2, 1))
        for index in range(k):  # K is small; a failed factorisation names the component
            try:
                np.linalg.cholesky(covars[index])
            except np.linalg.LinAlgError:
                raise GMMFileError(
                    f"{source}: covariance {index} is not positive definite (smallest eigenvalue "
                    f"{np.linalg.eigvalsh(covars[index]).min():.3g}); {_HOW_TO_FIX}"
                ) from None
        return GMMParams(means, covars, weights)


# Besides numpy: what protocol-2 pickles of arrays use (bytes are written as _codecs.encode calls).
_ALLOWED_BUILTINS = {("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor"), ("_codecs", "encode")}


class _GMMUnpickler(pickle.Unpickler):
    """Loads plain dicts of numpy arrays only, written by any numpy (1.x ``numpy.core``, 2.x
    ``numpy._core``) or Python (2 or 3); refuses every other class, so a GMM file cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("numpy.core") and hasattr(np, "_core"):
            module = "numpy._core" + module[len("numpy.core") :]
        elif module.startswith("numpy._core") and not hasattr(np, "_core"):
            module = "numpy.core" + module[len("numpy._core") :]
        if module.split(".")[0] == "numpy" or (module, name) in _ALLOWED_BUILTINS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"unexpected object {module}.{name} (a GMM file holds numpy arrays only)"
        )


def read_gmm_file(path: str | Path) -> GMMParams:
    """Read a ``gmm_08.pkl``-format file: dict with means (K, D), covars (K, D, D), weights (K,).

    Reads SMPLify's original Python 2 pickle as well as files from :func:`write_gmm_file`.
    Raises:
        FileNotFoundError: no file at ``path``.
        GMMFileError: unreadable file, missing keys, inconsistent shapes, weights that are not
            positive, covariances that are not positive definite.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GMM pose prior file not found: {path}; {_HOW_TO_FIX}")
    try:
        with open(path, "rb") as handle:
            content = _GMMUnpickler(handle, encoding="latin1").load()
    except Exception as err:
        raise GMMFileError(
            f"cannot read GMM pose prior {path} ({type(err).__name__}: {err}); the file is corrupt "
            f"or not a gmm_08.pkl-format pickle: {_HOW_TO_FIX}"
        ) from err
    if not isinstance(content, dict):
        raise GMMFileError(
            f"{path} holds a {type(content).__name__}, not a dict with means, covars and weights; "
            f"{_HOW_TO_FIX}"
        )
    missing = [key for key in ("means", "covars", "weights") if key not in content]
    if missing:
        raise GMMFileError(
            f"{path} lacks key(s) {missing} (has {sorted(map(str, content))}); a gmm_08.pkl-format file "
            f"holds means, covars and weights; {_HOW_TO_FIX}"
        )
    try:
        arrays = (np.asarray(content[k], dtype=np.float64) for k in ("means", "covars", "weights"))
        params = GMMParams(*arrays)
    except (TypeError, ValueError) as err:
        raise GMMFileError(f"{path}: means, covars and weights must be numeric arrays ({err})") from err
    return params.validate(str(path))


def write_gmm_file(path: str | Path, params: GMMParams) -> Path:
    """Write ``params`` in SMPLify's ``gmm_08.pkl`` format, readable on numpy 1.x and 2.x
    (and with ``pickle.load(f, encoding='latin1')`` as SMPLify/SPIN load it)."""
    params = params.validate("GMM parameters to write")
    return dump_portable({"means": params.means, "covars": params.covars, "weights": params.weights}, path)


class MaxMixturePrior(nn.Module):
    """SMPLify's max-mixture GMM pose prior, unweighted (SPIN multiplies it by 4.78^2).

    Buffers (module dtype and device): ``means`` (K, D), ``precisions`` (K, D, D),
    ``precision_factors`` (K, D, D) with ``precisions[k] = F_k F_k^T``, and ``constants`` (K,),
    the ``-log(...)`` term of each component.
    """

    def __init__(self, params: GMMParams, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        params = params.validate()
        covars = torch.as_tensor(np.array(params.covars), dtype=torch.float64)
        chol = torch.linalg.cholesky(covars)  # Sigma = L L^T
        eye = torch.eye(params.dim, dtype=torch.float64).expand_as(covars)
        chol_inv = torch.linalg.solve_triangular(chol, eye, upper=False)  # L^-1
        factors = chol_inv.transpose(1, 2)  # F = L^-T, so P = Sigma^-1 = F F^T
        half_logdet = torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(1)  # log sqrt(det Sigma)
        weights = torch.as_tensor(np.array(params.weights), dtype=torch.float64)
        constants = (
            -torch.log(weights) + 0.5 * params.dim * math.log(2.0 * math.pi) + half_logdet - half_logdet.min()
        )
        self.num_components, self.dim = params.num_components, params.dim
        self.register_buffer("means", torch.as_tensor(np.array(params.means)).to(dtype))
        self.register_buffer("precisions", (factors @ factors.transpose(1, 2)).to(dtype))
        self.register_buffer("precision_factors", factors.to(dtype))
        self.register_buffer("constants", constants.to(dtype))

    @classmethod
    def from_file(cls, path: str | Path, dtype: torch.dtype = torch.float32) -> "MaxMixturePrior":
        return cls(read_gmm_file(path), dtype=dtype)

    def component_energies(self, body_pose: torch.Tensor) -> torch.Tensor:
        """body_pose (B, D) -> (B, K): each component's 0.5 * Mahalanobis^2 + constant."""
        diff = body_pose[:, None, :] - self.means.to(body_pose.dtype)  # (B, K, D)
        whitened = torch.einsum("bkd,kde->bke", diff, self.precision_factors.to(body_pose.dtype))
        return 0.5 * whitened.square().sum(-1) + self.constants.to(body_pose.dtype)

    def forward(self, body_pose: torch.Tensor) -> torch.Tensor:
        """body_pose (B, D) axis-angle of joints 1..23 -> (B,) the max-mixture energy."""
        if body_pose.ndim != 2 or body_pose.shape[1] != self.dim:
            raise ValueError(f"body_pose must be (B, {self.dim}), got {tuple(body_pose.shape)}")
        return self.component_energies(body_pose).min(dim=1).values


def load_gmm_prior(path: str | Path | None = None, dtype: torch.dtype = torch.float32) -> MaxMixturePrior:
    """The max-mixture prior from ``path`` (a gmm_08.pkl-format file), or the bundled one when None."""
    return MaxMixturePrior.from_file(BUNDLED_GMM if path is None else path, dtype=dtype)
