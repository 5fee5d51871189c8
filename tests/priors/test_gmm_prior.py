"""The GMM pose prior: SMPLify's gmm_08.pkl format and its max-mixture value."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from spin_diff.priors.gmm import (
    BUNDLED_GMM,
    GMMFileError,
    GMMParams,
    MaxMixturePrior,
    load_gmm_prior,
    read_gmm_file,
    write_gmm_file,
)

K, D = 8, 69


def random_gmm(seed: int = 0, k: int = K, d: int = D) -> dict[str, np.ndarray]:
    """Random mixture under gmm_08.pkl's keys, shapes and dtype (float64)."""
    rng = np.random.default_rng(seed)
    covars = []
    for _ in range(k):
        a = rng.normal(size=(d, d)) / np.sqrt(d)
        covars.append(0.05 * (a @ a.T) + rng.uniform(0.01, 0.05) * np.eye(d))
    weights = rng.uniform(0.2, 1.0, size=k)
    return {
        "means": rng.normal(scale=0.3, size=(k, d)),
        "covars": np.stack(covars),
        "weights": weights / weights.sum(),
    }


def write_smplify_style(path: Path, content: dict) -> Path:
    """Pickle like SMPLify's Python 2 file: protocol 2, arrays referring to numpy.core."""
    raw = pickle.dumps(content, protocol=2).replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    path.write_bytes(raw)
    return path


def smplify_max_mixture(x: np.ndarray, gmm: dict[str, np.ndarray]) -> np.ndarray:
    """The formula, evaluated directly: min_k 0.5 (x-mu)^T Sigma^-1 (x-mu) - log(w_k / c_k)."""
    d = gmm["means"].shape[1]
    sqrt_dets = np.sqrt([np.linalg.det(c) for c in gmm["covars"]])
    nll_weights = gmm["weights"] / ((2 * np.pi) ** (d / 2) * sqrt_dets / sqrt_dets.min())
    values = []
    for mean, covar, weight in zip(gmm["means"], gmm["covars"], nll_weights):
        diff = x - mean
        values.append(0.5 * np.einsum("bi,ij,bj->b", diff, np.linalg.inv(covar), diff) - np.log(weight))
    return np.min(values, axis=0)


@pytest.fixture
def gmm_file(tmp_path):
    content = random_gmm(0)
    return write_smplify_style(tmp_path / "gmm_08.pkl", content), content


def test_value_matches_smplify_formula_on_random_file(gmm_file):
    path, content = gmm_file
    assert all(np.isfinite(np.linalg.det(c)) and np.linalg.det(c) > 0 for c in content["covars"])
    prior = MaxMixturePrior(read_gmm_file(path), dtype=torch.float64)
    rng = np.random.default_rng(1)
    # Poses near each component and far from all of them, so that every component wins somewhere.
    x = np.concatenate([content["means"] + rng.normal(scale=0.2, size=(K, D)), rng.normal(scale=0.5, size=(8, D))])
    expected = smplify_max_mixture(x, content)
    got = prior(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-8)
    winners = prior.component_energies(torch.as_tensor(x)).argmin(1)
    assert len(set(winners.tolist())) > 3


def test_float32_prior_agrees_with_float64(gmm_file):
    path, content = gmm_file
    x = torch.as_tensor(content["means"][:4] + 0.1)
    high = MaxMixturePrior.from_file(path, dtype=torch.float64)(x)
    low = MaxMixturePrior.from_file(path)(x.float())
    assert low.dtype == torch.float32
    torch.testing.assert_close(low.double(), high, rtol=1e-4, atol=1e-3)


def test_gradient_matches_finite_differences():
    params = GMMParams(**random_gmm(2, k=4, d=12))
    prior = MaxMixturePrior(params, dtype=torch.float64)
    x = torch.as_tensor(params.means[:3] + 0.3, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(prior, (x,), eps=1e-6, atol=1e-6)


def test_full_size_gradient_is_the_winning_components_mahalanobis_gradient(gmm_file):
    path, content = gmm_file
    prior = MaxMixturePrior.from_file(path, dtype=torch.float64)
    x = torch.as_tensor(content["means"][:2] + 0.05).requires_grad_(True)
    prior(x).sum().backward()
    k = prior.component_energies(x.detach()).argmin(1)
    expected = [np.linalg.solve(content["covars"][j], x.detach()[i].numpy() - content["means"][j]) for i, j in enumerate(k)]
    np.testing.assert_allclose(x.grad.numpy(), np.stack(expected), rtol=1e-8, atol=1e-10)


def test_write_read_round_trip_and_plain_pickle_load(tmp_path, gmm_file):
    _, content = gmm_file
    out = write_gmm_file(tmp_path / "copy" / "gmm_08.pkl", GMMParams(**content))
    back = read_gmm_file(out)
    for key in ("means", "covars", "weights"):
        np.testing.assert_array_equal(getattr(back, key), content[key])
    with open(out, "rb") as handle:  # how SMPLify and SPIN load it
        plain = pickle.load(handle, encoding="latin1")
    assert isinstance(plain["covars"], np.ndarray) and plain["covars"].shape == (K, D, D)
    assert plain["means"].dtype == np.float64


def test_bundled_prior_loads_and_prefers_a_natural_pose():
    assert BUNDLED_GMM.is_file()
    prior = load_gmm_prior(dtype=torch.float64)
    assert (prior.num_components, prior.dim) == (8, 69)
    natural = torch.zeros(1, 69, dtype=torch.float64)
    natural[0, 3 * 15 + 2] = -1.2  # left shoulder lowered (joint 16, body-pose row 15)
    natural[0, 3 * 16 + 2] = 1.2
    contorted = torch.zeros(1, 69, dtype=torch.float64)
    contorted[0, 3 * 3] = -1.5  # left knee bent the wrong way (joint 4, body-pose row 3)
    contorted[0, 3 * 17 + 1] = 2.0  # left elbow bent backwards
    assert prior(natural) < prior(contorted)


def _pickle_file(path: Path, content) -> Path:
    with open(path, "wb") as handle:
        pickle.dump(content, handle, protocol=2)
    return path


def test_missing_file_names_path_and_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="gmm_08.pkl.*fit-gmm"):
        read_gmm_file(tmp_path / "gmm_08.pkl")


def test_corrupt_file(tmp_path):
    path = tmp_path / "gmm_08.pkl"
    path.write_bytes(b"\x80\x02}q\x00(U\x05means")  # truncated pickle
    with pytest.raises(GMMFileError, match=f"{path.name}.*corrupt"):
        read_gmm_file(path)


def test_file_that_would_run_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = _pickle_file(tmp_path / "evil.pkl", {"means": Evil()})
    with pytest.raises(GMMFileError, match="unexpected object"):
        read_gmm_file(path)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c.pop("covars"), r"lacks key\(s\) \['covars'\]"),
        (lambda c: c.update(means=c["means"][:, :60]), "covars must be"),
        (lambda c: c.update(weights=c["weights"][:5]), "weights must be"),
        (lambda c: c["covars"].__setitem__(3, -np.eye(D)), "covariance 3 is not positive definite"),
        (lambda c: c["weights"].__setitem__(2, 0.0), "weights must all be positive"),
        (lambda c: c["means"].__setitem__((0, 0), np.nan), "NaN"),
    ],
)
def test_bad_content_is_named(tmp_path, change, message):
    content = random_gmm(3)
    change(content)
    path = _pickle_file(tmp_path / "gmm_08.pkl", content)
    with pytest.raises(GMMFileError, match=message):
        read_gmm_file(path)


def test_not_a_dict(tmp_path):
    path = _pickle_file(tmp_path / "gmm_08.pkl", [1, 2, 3])
    with pytest.raises(GMMFileError, match="not a dict"):
        read_gmm_file(path)


def test_wrong_input_shape():
    prior = MaxMixturePrior(GMMParams(**random_gmm(0, k=2, d=5)))
    with pytest.raises(ValueError, match=r"\(B, 5\)"):
        prior(torch.zeros(3, 6))
    assert math.isfinite(float(prior(torch.zeros(1, 5))[0]))
