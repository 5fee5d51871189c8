"""Rotation conversions: round trips, agreement with scipy, gradients, the 6D layout."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from spin_diff.geometry import axis_angle_to_matrix, axis_angle_to_rot6d, geodesic_angle, matrix_to_axis_angle, matrix_to_quaternion, matrix_to_rot6d, quaternion_to_axis_angle, quaternion_to_matrix, rot6d_columns_to_spin, rot6d_spin_to_columns, rot6d_to_axis_angle, rot6d_to_matrix

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
TOLERANCE = {torch.float32: 2e-5, torch.float64: 1e-10}

# Angles where naive formulas break down: exactly zero, tiny, both sides of any small-angle
# switch, generic, and close to / exactly pi.
ANGLES = [0.0, 1e-12, 1e-8, 1e-5, 9.9e-3, 1.01e-2, 0.3, 1.0, 2.5, math.pi - 1e-3, math.pi - 1e-6]


def _random_axes(n, seed=0):
    axes = np.random.default_rng(seed).normal(size=(n, 3))
    return axes / np.linalg.norm(axes, axis=-1, keepdims=True)


def _axis_angles(angles, seed=0):
    return _random_axes(len(angles), seed) * np.asarray(angles)[:, None]


def _random_rotations(n, seed=0):
    return Rotation.random(n, random_state=seed).as_matrix()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_axis_angle_to_matrix_matches_scipy(dtype, device):
    rotvecs = np.concatenate([_axis_angles(ANGLES), _axis_angles([math.pi] * 3, seed=1)])
    expected = Rotation.from_rotvec(rotvecs).as_matrix()
    got = axis_angle_to_matrix(torch.tensor(rotvecs, dtype=dtype, device=device))
    assert got.dtype == dtype and got.device.type == device
    np.testing.assert_allclose(got.cpu().double().numpy(), expected, atol=TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matrix_to_axis_angle_matches_scipy(dtype):
    matrices = _random_rotations(64)
    expected = Rotation.from_matrix(matrices).as_rotvec()  # angle in [0, pi]
    got = matrix_to_axis_angle(torch.tensor(matrices, dtype=dtype))
    np.testing.assert_allclose(got.double().numpy(), expected, atol=10 * TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_axis_angle_round_trip_near_zero_and_pi(dtype):
    rotvecs = torch.tensor(_axis_angles(ANGLES), dtype=dtype)
    back = matrix_to_axis_angle(axis_angle_to_matrix(rotvecs))
    # float32 cannot resolve an axis better than ~1e-7 relative to the matrix entries.
    atol = {torch.float32: 1e-5, torch.float64: 1e-9}[dtype]
    torch.testing.assert_close(back, rotvecs, atol=atol, rtol=0)


def test_axis_angle_round_trip_tiny_angles_keep_relative_precision():
    # Near zero the recovered vector must not be rounded to zero or inflated by an epsilon.
    rotvecs = torch.tensor(_axis_angles([1e-12, 1e-9, 1e-6]), dtype=torch.float64)
    back = matrix_to_axis_angle(axis_angle_to_matrix(rotvecs))
    torch.testing.assert_close(back, rotvecs, rtol=1e-6, atol=0)


def test_axis_angle_at_exactly_pi_gives_angle_pi_and_same_rotation():
    rotvecs = torch.tensor(_axis_angles([math.pi] * 5, seed=3), dtype=torch.float64)
    matrices = axis_angle_to_matrix(rotvecs)
    back = matrix_to_axis_angle(matrices)
    torch.testing.assert_close(back.norm(dim=-1), torch.full((5,), math.pi, dtype=torch.float64))
    # The axis sign is arbitrary at pi; the rotation is not.
    torch.testing.assert_close(axis_angle_to_matrix(back), matrices, atol=1e-12, rtol=0)


def test_recovered_angle_is_in_zero_pi():
    # Angles beyond pi come back as the equivalent rotation with angle 2 pi - theta.
    rotvecs = torch.tensor(_axis_angles([3.5, 5.0, 2 * math.pi - 0.1]), dtype=torch.float64)
    back = matrix_to_axis_angle(axis_angle_to_matrix(rotvecs))
    angles = back.norm(dim=-1)
    assert torch.all(angles <= math.pi) and torch.all(angles >= 0)
    torch.testing.assert_close(axis_angle_to_matrix(back), axis_angle_to_matrix(rotvecs))


def test_any_leading_dimensions():
    rotvecs = torch.randn(2, 3, 4, 3, generator=torch.Generator().manual_seed(0))
    matrices = axis_angle_to_matrix(rotvecs)
    assert matrices.shape == (2, 3, 4, 3, 3)
    assert matrix_to_axis_angle(matrices).shape == (2, 3, 4, 3)
    assert matrix_to_rot6d(matrices).shape == (2, 3, 4, 6)
    assert rot6d_to_matrix(matrix_to_rot6d(matrices)).shape == (2, 3, 4, 3, 3)
    assert matrix_to_quaternion(matrices).shape == (2, 3, 4, 4)
    assert geodesic_angle(matrices, matrices).shape == (2, 3, 4)
    # Same result as the flattened batch: nothing mixes samples.
    flat = axis_angle_to_matrix(rotvecs.reshape(-1, 3)).reshape(2, 3, 4, 3, 3)
    torch.testing.assert_close(matrices, flat)


@pytest.mark.parametrize("scale", [0.0, 1e-9, 1e-4, 9e-3, 1.1e-2, 1.0])
def test_axis_angle_to_matrix_gradient_matches_finite_differences(scale):
    rotvecs = torch.tensor(_random_axes(2, seed=5) * scale, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (rotvecs,))
    assert torch.autograd.gradgradcheck(axis_angle_to_matrix, (rotvecs,))


def test_axis_angle_to_matrix_gradient_at_zero_is_the_generator():
    # dR/da_k at a = 0 is the cross-product matrix of e_k: the so(3) generators.
    jacobian = torch.autograd.functional.jacobian(
        axis_angle_to_matrix, torch.zeros(3, dtype=torch.float64)
    )
    generators = torch.tensor(
        [
            [[0, 0, 0], [0, 0, -1], [0, 1, 0]],
            [[0, 0, 1], [0, 0, 0], [-1, 0, 0]],
            [[0, -1, 0], [1, 0, 0], [0, 0, 0]],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(jacobian.permute(2, 0, 1), generators)


def test_float32_gradient_at_zero_is_finite():
    rotvecs = torch.zeros(4, 3, requires_grad=True)
    axis_angle_to_matrix(rotvecs).sum().backward()
    assert torch.isfinite(rotvecs.grad).all()


@pytest.mark.parametrize("angle", [1e-6, 0.5, 3.0])
def test_matrix_to_axis_angle_gradient_matches_finite_differences(angle):
    rotvec = torch.tensor(_axis_angles([angle], seed=7), dtype=torch.float64)
    matrix = axis_angle_to_matrix(rotvec).requires_grad_(True)
    assert torch.autograd.gradcheck(matrix_to_axis_angle, (matrix,))


def test_spin_6d_layout_is_first_two_columns_row_major():
    matrix = torch.tensor(_random_rotations(1, seed=2)[0], dtype=torch.float64)
    expected = torch.stack(
        [matrix[0, 0], matrix[0, 1], matrix[1, 0], matrix[1, 1], matrix[2, 0], matrix[2, 1]]
    )
    torch.testing.assert_close(matrix_to_rot6d(matrix), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rot6d_round_trip(dtype):
    matrices = torch.tensor(_random_rotations(32), dtype=dtype)
    torch.testing.assert_close(
        rot6d_to_matrix(matrix_to_rot6d(matrices)), matrices, atol=TOLERANCE[dtype], rtol=0
    )
    rotvecs = torch.tensor(_axis_angles([0.0, 1e-7, 1.0, 3.0]), dtype=dtype)
    torch.testing.assert_close(
        rot6d_to_axis_angle(axis_angle_to_rot6d(rotvecs)),
        rotvecs,
        atol=10 * TOLERANCE[dtype],
        rtol=0,
    )


def test_rot6d_decoding_ignores_column_scale_and_second_column_drift():
    # Gram-Schmidt keeps the first column's direction and only the part of the second
    # column orthogonal to it, so these perturbations decode to the same rotation.
    matrices = torch.tensor(_random_rotations(8, seed=4), dtype=torch.float64)
    columns = matrices[..., :, :2].clone()
    columns[..., 0] *= 3.0
    columns[..., 1] = 0.5 * columns[..., 1] + 2.0 * matrices[..., :, 0]
    torch.testing.assert_close(rot6d_to_matrix(columns.reshape(8, 6)), matrices)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rot6d_decoding_of_arbitrary_input_is_a_rotation(dtype):
    rot6d = torch.randn(256, 6, generator=torch.Generator().manual_seed(1), dtype=dtype) * 5
    matrices = rot6d_to_matrix(rot6d)
    eye = torch.eye(3, dtype=dtype).expand(256, 3, 3)
    tol = {torch.float32: 1e-5, torch.float64: 1e-12}[dtype]
    torch.testing.assert_close(matrices.transpose(-1, -2) @ matrices, eye, atol=tol, rtol=0)
    ones = torch.ones(256, dtype=dtype)
    torch.testing.assert_close(torch.linalg.det(matrices), ones, atol=tol, rtol=0)
    # First decoded column is the first input column, normalised.
    first = rot6d.reshape(256, 3, 2)[..., 0]
    first_unit = first / first.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(matrices[..., 0], first_unit, atol=tol, rtol=0)


def test_columns_layout_converters():
    matrices = torch.tensor(_random_rotations(6, seed=8), dtype=torch.float64)
    spin = matrix_to_rot6d(matrices)
    columns = rot6d_spin_to_columns(spin)
    # ScoreHMR's layout: first column, then second column.
    one_after_the_other = torch.cat([matrices[..., :, 0], matrices[..., :, 1]], dim=-1)
    torch.testing.assert_close(columns, one_after_the_other)
    torch.testing.assert_close(rot6d_columns_to_spin(columns), spin)
    torch.testing.assert_close(rot6d_to_matrix(rot6d_columns_to_spin(columns)), matrices)
    # The converters are permutations, so they also round-trip arbitrary numbers.
    x = torch.arange(12.0).reshape(2, 6)
    torch.testing.assert_close(rot6d_spin_to_columns(rot6d_columns_to_spin(x)), x)
    torch.testing.assert_close(rot6d_spin_to_columns(x)[0], torch.tensor([0.0, 2, 4, 1, 3, 5]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_quaternion_matches_scipy_and_round_trips(dtype):
    matrices = np.concatenate(
        [
            _random_rotations(32),
            Rotation.from_rotvec(_axis_angles([0.0, 1e-9, math.pi, math.pi - 1e-7])).as_matrix(),
        ]
    )
    xyzw = Rotation.from_matrix(matrices).as_quat()
    expected = np.concatenate([xyzw[:, 3:], xyzw[:, :3]], axis=1)
    # Same canonical sign (w >= 0); at w == 0 the sign is arbitrary, so compare up to sign.
    expected *= np.where(expected[:, :1] < 0, -1.0, 1.0)
    got = matrix_to_quaternion(torch.tensor(matrices, dtype=dtype)).double().numpy()
    sign = np.sign((got * expected).sum(-1, keepdims=True))
    np.testing.assert_allclose(got * sign, expected, atol=TOLERANCE[dtype])
    assert np.all(got[:, 0] >= 0)
    np.testing.assert_allclose(np.linalg.norm(got, axis=-1), 1.0, atol=TOLERANCE[dtype])

    back = quaternion_to_matrix(torch.tensor(got, dtype=dtype))
    np.testing.assert_allclose(back.double().numpy(), matrices, atol=TOLERANCE[dtype])


def test_quaternion_to_matrix_normalises_and_ignores_sign():
    q = torch.randn(10, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    unit = q / q.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(quaternion_to_matrix(3.0 * q), quaternion_to_matrix(unit))
    torch.testing.assert_close(quaternion_to_matrix(-q), quaternion_to_matrix(q))
    torch.testing.assert_close(
        axis_angle_to_matrix(quaternion_to_axis_angle(-q)), quaternion_to_matrix(q)
    )


@pytest.mark.parametrize("angle", [0.0, 1e-7, 1e-3, 0.7, 2.0, math.pi - 1e-6, math.pi])
def test_geodesic_angle(angle):
    base = torch.tensor(_random_rotations(4, seed=9), dtype=torch.float64)
    relative = axis_angle_to_matrix(torch.tensor(_axis_angles([angle] * 4, seed=10)))
    got = geodesic_angle(base, base @ relative)
    # Relative precision even for tiny angles, where acos of the trace would return ~1e-8.
    expected = torch.full((4,), angle, dtype=torch.float64)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=1e-6)
    # Symmetric, and matches scipy's magnitude of the relative rotation.
    torch.testing.assert_close(geodesic_angle(base @ relative, base), got, atol=1e-12, rtol=1e-6)
    scipy_angle = (
        Rotation.from_matrix(base.numpy()).inv() * Rotation.from_matrix((base @ relative).numpy())
    ).magnitude()
    np.testing.assert_allclose(got.numpy(), scipy_angle, atol=1e-7)
