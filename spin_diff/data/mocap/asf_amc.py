"""Acclaim ASF (skeleton) and AMC (motion): the CMU Graphics Lab database's own format.

ASF: a root, bones (direction in world coordinates at rest, length, a local frame ``axis``
given as Euler angles with an axis order, rotational degrees of freedom ``dof``) and a
hierarchy. AMC: per frame, the root's translation and rotation and each bone's dof values.
A bone's world rotation is ``M_bone = M_parent @ C @ R(dof) @ C^-1`` with ``C`` the bone's axis
frame, and its end lies at ``start + M_bone @ (length * direction)``; Euler triples like
"XYZ" act x first, then y, then z (``R = Rz @ Ry @ Rx``).

In the common :class:`~spin_diff.data.mocap.skeleton.Skeleton` form every bone is a node at
its start (its parent's end); the point named after a bone is its end, and ``root`` is the
root's position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spin_diff.data.mocap.skeleton import MocapFileError, Motion, Skeleton, euler_matrices
from spin_diff.errors import MissingInputError

_DOF_AXES = {"rx": "X", "ry": "Y", "rz": "Z"}


@dataclass
class _Bone:
    name: str
    line: int
    direction: np.ndarray = field(default_factory=lambda: np.zeros(3))
    length: float = 0.0
    axis: np.ndarray = field(default_factory=lambda: np.eye(3))  # C
    dofs: list[str] = field(default_factory=list)  # e.g. ["rx", "rz"]
    parent: str | None = None


@dataclass
class AsfSkeleton:
    """A parsed ASF file: the common skeleton plus what AMC decoding needs."""

    skeleton: Skeleton
    bones: dict[str, _Bone]
    root_order: list[str]  # e.g. ["TX", "TY", "TZ", "RX", "RY", "RZ"]
    root_axis: np.ndarray  # C of the root
    angle_unit: str  # "deg" or "rad"
    length_unit: float  # ASF ":units length" (CMU: 0.45, i.e. inches / 0.45)
    path: str


def _tokens(path: Path) -> list[tuple[int, list[str]]]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise MocapFileError(path, None, f"cannot read the file ({err.strerror or err})") from err
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if line:
            rows.append((number, line.split()))
    return rows


def _floats(path: Path, line: int, values: list[str], count: int, what: str) -> np.ndarray:
    if len(values) < count:
        raise MocapFileError(path, line, f"{what} needs {count} numbers, got {len(values)}: {' '.join(values)!r}")
    try:
        result = np.array([float(v) for v in values[:count]], dtype=np.float64)
    except ValueError as err:
        raise MocapFileError(path, line, f"{what}: not a number in {' '.join(values)!r}") from err
    if not np.isfinite(result).all():
        raise MocapFileError(path, line, f"{what}: non-finite value in {' '.join(values)!r}")
    return result


def _axis_matrix(path: Path, line: int, values: list[str], unit: str) -> np.ndarray:
    angles = _floats(path, line, values, 3, "axis")
    order = values[3].upper() if len(values) > 3 else "XYZ"
    if sorted(order) != ["X", "Y", "Z"]:
        raise MocapFileError(path, line, f"axis order must be a permutation of XYZ, got {order!r}")
    if unit == "rad":
        angles = np.rad2deg(angles)
    return euler_matrices(angles[::-1], order[::-1])  # x first: R = Rz Ry Rx for "XYZ"


def read_asf(path: str | Path) -> AsfSkeleton:
    """Parse an ASF skeleton file. Raises MocapFileError (file:line) on malformed input."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"ASF skeleton file not found: {path}")
    rows = _tokens(path)
    section, angle_unit, length_unit = None, "deg", 1.0
    root_order = ["TX", "TY", "TZ", "RX", "RY", "RZ"]
    root_axis_values: tuple[int, list[str]] | None = None
    root_orientation = ["0", "0", "0"]
    bones: dict[str, _Bone] = {}
    children: dict[str, list[str]] = {}
    current: _Bone | None = None
    for number, words in rows:
        key = words[0].lower()
        if key.startswith(":"):
            section = key
            if key in (":version", ":name"):
                section = None
            continue
        if section == ":units":
            if key == "angle":
                if len(words) < 2 or words[1].lower() not in ("deg", "rad"):
                    raise MocapFileError(path, number, "':units angle' must be deg or rad")
                angle_unit = words[1].lower()
            elif key == "length":
                length_unit = float(_floats(path, number, words[1:], 1, "units length")[0])
        elif section == ":root":
            if key == "order":
                root_order = [w.upper() for w in words[1:]]
                if len(root_order) != 6 or {w[0] for w in root_order} - {"T", "R"}:
                    raise MocapFileError(path, number, f"root order must list 6 channels like TX ... RZ, got {words[1:]}")
            elif key == "axis":
                root_axis_values = (number, words)
            elif key == "orientation":
                root_orientation = words[1:4]
        elif section == ":bonedata":
            if key == "begin":
                if current is not None:
                    raise MocapFileError(path, number, f"'begin' inside bone {current.name!r} (missing 'end')")
                current = _Bone(name="", line=number)
            elif key == "end":
                if current is None:
                    raise MocapFileError(path, number, "'end' without 'begin'")
                if not current.name:
                    raise MocapFileError(path, current.line, "bone without a name")
                if not np.linalg.norm(current.direction) > 0 and current.length > 0:
                    raise MocapFileError(path, current.line, f"bone {current.name!r}: zero direction vector")
                bones[current.name] = current
                current = None
            elif current is None:
                raise MocapFileError(path, number, f"{words[0]!r} outside a begin/end bone block")
            elif key == "name":
                current.name = words[1] if len(words) > 1 else ""
            elif key == "direction":
                direction = _floats(path, number, words[1:], 3, "direction")
                norm = np.linalg.norm(direction)
                current.direction = direction / norm if norm > 0 else direction
            elif key == "length":
                current.length = float(_floats(path, number, words[1:], 1, "length")[0])
            elif key == "axis":
                current.axis = _axis_matrix(path, number, words[1:], angle_unit)
            elif key == "dof":
                dofs = [w.lower() for w in words[1:]]
                unknown = [d for d in dofs if d not in _DOF_AXES and d not in ("tx", "ty", "tz", "l")]
                if unknown:
                    raise MocapFileError(path, number, f"unknown dof {unknown} (expected rx, ry, rz)")
                current.dofs = dofs
        elif section == ":hierarchy":
            if key in ("begin", "end"):
                continue
            parent = words[0]
            if parent != "root" and parent not in bones:
                raise MocapFileError(path, number, f"hierarchy names an unknown bone {parent!r}")
            for child in words[1:]:
                if child not in bones:
                    raise MocapFileError(path, number, f"hierarchy names an unknown bone {child!r}")
                if bones[child].parent is not None:
                    raise MocapFileError(path, number, f"bone {child!r} has two parents")
                bones[child].parent = parent
                children.setdefault(parent, []).append(child)
    if current is not None:
        raise MocapFileError(path, current.line, f"bone {current.name or '?'!r} is not closed with 'end'")
    if not bones:
        raise MocapFileError(path, None, "no :bonedata bones found; is this an ASF skeleton file?")
    orphans = [name for name, bone in bones.items() if bone.parent is None]
    if orphans:
        raise MocapFileError(path, bones[orphans[0]].line, f"bones not in :hierarchy: {orphans}")
    root_axis = np.eye(3)
    if root_axis_values is not None:
        number, words = root_axis_values
        order = words[1].upper() if len(words) > 1 else "XYZ"
        values = list(root_orientation) + [order]
        root_axis = _axis_matrix(path, number, values, angle_unit)

    # Nodes in depth-first order from the root, so parents precede children.
    names, parents, offsets = ["root"], [-1], [np.zeros(3)]
    stack = [(child, 0) for child in reversed(children.get("root", []))]
    while stack:
        name, parent_index = stack.pop()
        parent_bone = bones.get(names[parent_index])
        names.append(name)
        parents.append(parent_index)
        offsets.append(parent_bone.length * parent_bone.direction if parent_bone is not None else np.zeros(3))
        index = len(names) - 1
        stack.extend((child, index) for child in reversed(children.get(name, [])))
    point_names = ["root"] + names[1:]
    point_nodes = list(range(len(names)))
    tips = [np.zeros(3)] + [bones[n].length * bones[n].direction for n in names[1:]]
    skeleton = Skeleton(names, parents, np.array(offsets), point_names, point_nodes, np.array(tips))
    return AsfSkeleton(skeleton, bones, root_order, root_axis, angle_unit, length_unit, str(path))


def read_amc(path: str | Path, asf: AsfSkeleton) -> Motion:
    """Parse an AMC motion for ``asf``. Raises MocapFileError (file:line) on malformed input."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"AMC motion file not found: {path}")
    rows = _tokens(path)
    skeleton = asf.skeleton
    index = {name: k for k, name in enumerate(skeleton.node_names)}
    frames: list[dict[str, tuple[int, list[str]]]] = []
    for number, words in rows:
        if words[0].startswith(":"):
            continue
        if len(words) == 1 and words[0].isdigit():
            frames.append({})
            continue
        if not frames:
            raise MocapFileError(path, number, f"{words[0]!r} before the first frame number")
        if words[0] not in index:
            raise MocapFileError(path, number, f"unknown bone {words[0]!r} (not in {asf.path})")
        frames[-1][words[0]] = (number, words[1:])
    if not frames:
        raise MocapFileError(path, None, "no frames found; is this an AMC motion file?")
    count = len(frames)
    root_values = np.zeros((count, 6))
    bone_values = {name: np.zeros((count, 3)) for name in asf.bones}
    for f, frame in enumerate(frames):
        for name, (number, values) in frame.items():
            if name == "root":
                root_values[f] = _floats(path, number, values, 6, "root")
            else:
                dofs = [d for d in asf.bones[name].dofs if d in _DOF_AXES]
                if len(values) != len(dofs):
                    raise MocapFileError(path, number, f"bone {name!r} has {len(dofs)} dof ({' '.join(dofs)}), "
                                                       f"got {len(values)} values")  # fmt: skip
                if dofs:
                    bone_values[name][f, : len(dofs)] = _floats(path, number, values, len(dofs), name)
    if asf.angle_unit == "rad":
        root_values[:, 3:] = np.rad2deg(root_values[:, 3:])
        for values in bone_values.values():
            values[:] = np.rad2deg(values)

    rotations = np.empty((count, len(skeleton.node_names), 3, 3))
    order = [channel.upper() for channel in asf.root_order]
    translation = np.stack([root_values[:, order.index(f"T{a}")] for a in "XYZ"], 1)
    rotation_channels = [c for c in order if c.startswith("R")]
    root_rotation = euler_matrices(
        np.stack([root_values[:, order.index(c)] for c in rotation_channels[::-1]], 1),
        "".join(c[1] for c in rotation_channels[::-1]),
    )
    rotations[:, 0] = asf.root_axis @ root_rotation @ asf.root_axis.T
    for name, bone in asf.bones.items():
        dofs = [d for d in bone.dofs if d in _DOF_AXES]
        if dofs:
            local = euler_matrices(bone_values[name][:, : len(dofs)][:, ::-1], "".join(_DOF_AXES[d] for d in dofs[::-1]))
        else:
            local = np.broadcast_to(np.eye(3), (count, 3, 3))
        rotations[:, index[name]] = bone.axis @ local @ bone.axis.T
    return Motion(skeleton, rotations, translation, 1.0 / 120.0, str(path), "cmu_asf")
