"""BVH motion files (the CMU database's widely shared conversions, and other BVH).

HIERARCHY: ROOT/JOINT blocks with an OFFSET from the parent (in the parent's frame) and
CHANNELS; "End Site" blocks give a tip. MOTION: ``Frames:``, ``Frame Time:``, then one line of
channel values per frame in hierarchy order. A joint's local rotation is the product of its
rotation channels in the order listed (``Zrotation Yrotation Xrotation`` -> ``Rz @ Ry @ Rx``);
position channels move the root.

Points for retargeting: every joint's position under its own name, and each End Site as
``<joint>_end``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spin_diff.data.mocap.skeleton import MocapFileError, Motion, Skeleton, euler_matrices
from spin_diff.errors import MissingInputError

_ROTATION = {"xrotation": "X", "yrotation": "Y", "zrotation": "Z"}
_POSITION = {"xposition": 0, "yposition": 1, "zposition": 2}


def read_bvh(path: str | Path) -> Motion:
    """Parse a BVH file. Raises MocapFileError (file:line) on malformed input."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"BVH file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as err:
        raise MocapFileError(path, None, f"cannot read the file ({err.strerror or err})") from err

    names: list[str] = []
    parents: list[int] = []
    offsets: list[np.ndarray] = []
    channels: list[list[str]] = []
    end_sites: list[tuple[int, np.ndarray]] = []
    stack: list[int] = []  # open joints; -2 marks an open End Site
    pending: tuple[str, int] | None = None  # a joint declared, its '{' not yet seen
    number, motion_line = 0, None
    saw_hierarchy = False

    def numbers(values: list[str], count: int, what: str) -> np.ndarray:
        if len(values) != count:
            raise MocapFileError(path, number, f"{what} needs {count} numbers, got {len(values)}")
        try:
            result = np.array([float(v) for v in values], dtype=np.float64)
        except ValueError as err:
            raise MocapFileError(path, number, f"{what}: not a number in {' '.join(values)!r}") from err
        if not np.isfinite(result).all():
            raise MocapFileError(path, number, f"{what}: non-finite value")
        return result

    for number, raw in enumerate(lines, start=1):
        words = raw.split()
        if not words:
            continue
        key = words[0].upper()
        if key == "HIERARCHY":
            saw_hierarchy = True
        elif key in ("ROOT", "JOINT"):
            if not saw_hierarchy:
                raise MocapFileError(path, number, "joint before the HIERARCHY keyword; is this a BVH file?")
            if (key == "ROOT") != (not stack):
                raise MocapFileError(path, number, "ROOT must come first and only once; JOINT must be inside it")
            if len(words) < 2:
                raise MocapFileError(path, number, f"{words[0]} without a name")
            pending = (" ".join(words[1:]), stack[-1] if stack else -1)
        elif key == "END":
            if not stack or stack[-1] < 0:
                raise MocapFileError(path, number, "End Site outside a joint")
            pending = ("", stack[-1])
        elif key == "{":
            if pending is None:
                raise MocapFileError(path, number, "'{' without a ROOT, JOINT or End Site before it")
            name, parent = pending
            pending = None
            if name:
                names.append(name)
                parents.append(parent)
                offsets.append(np.zeros(3))
                channels.append([])
                stack.append(len(names) - 1)
            else:
                end_sites.append((parent, np.zeros(3)))
                stack.append(-2)
        elif key == "}":
            if not stack:
                raise MocapFileError(path, number, "unbalanced '}'")
            stack.pop()
        elif key == "OFFSET":
            if not stack:
                raise MocapFileError(path, number, "OFFSET outside a joint")
            offset = numbers(words[1:], 3, "OFFSET")
            if stack[-1] == -2:
                end_sites[-1] = (end_sites[-1][0], offset)
            else:
                offsets[stack[-1]] = offset
        elif key == "CHANNELS":
            if not stack or stack[-1] < 0:
                raise MocapFileError(path, number, "CHANNELS outside a joint")
            try:
                count = int(words[1])
            except (IndexError, ValueError) as err:
                raise MocapFileError(path, number, "CHANNELS needs a count, then the channel names") from err
            kinds = [w.lower() for w in words[2:]]
            if len(kinds) != count:
                raise MocapFileError(path, number, f"CHANNELS says {count} but lists {len(kinds)}")
            unknown = [w for w in kinds if w not in _ROTATION and w not in _POSITION]
            if unknown:
                raise MocapFileError(path, number, f"unknown channel(s) {unknown}")
            channels[stack[-1]] = kinds
        elif key == "MOTION":
            if stack:
                raise MocapFileError(path, number, f"MOTION before the hierarchy is closed ({len(stack)} open '{{')")
            motion_line = number
            break
        else:
            raise MocapFileError(path, number, f"unexpected {words[0]!r} in the hierarchy")
    if not names:
        raise MocapFileError(path, None, "no ROOT joint found; is this a BVH file?")
    if motion_line is None:
        raise MocapFileError(path, len(lines), "no MOTION section")

    header: dict[str, float] = {}
    data_start = None
    for number in range(motion_line + 1, len(lines) + 1):
        text = lines[number - 1].strip()
        if not text:
            continue
        lowered = text.lower()
        if lowered.startswith("frames:") or lowered.startswith("frame time:"):
            key, value = text.split(":", 1)
            try:
                header[key.strip().lower()] = float(value)
            except ValueError as err:
                raise MocapFileError(path, number, f"{key.strip()}: not a number ({value.strip()!r})") from err
            continue
        data_start = number
        break
    if "frames" not in header or "frame time" not in header:
        raise MocapFileError(path, motion_line, "MOTION needs 'Frames:' and 'Frame Time:' lines")
    width = sum(len(c) for c in channels)
    rows = []
    if data_start is not None:
        for number in range(data_start, len(lines) + 1):
            values = lines[number - 1].split()
            if not values:
                continue
            rows.append(numbers(values, width, f"frame {len(rows)} ({width} channels)"))
    expected = int(header["frames"])
    if len(rows) != expected:
        number = len(lines)
        raise MocapFileError(path, number, f"'Frames: {expected}' but {len(rows)} frame lines follow")
    if not rows:
        raise MocapFileError(path, motion_line, "no frames")
    values = np.stack(rows)

    frames = len(rows)
    rotations = np.empty((frames, len(names), 3, 3))
    root_positions = np.zeros((frames, 3))
    column = 0
    for k, kinds in enumerate(channels):
        block = values[:, column : column + len(kinds)]
        column += len(kinds)
        axes = "".join(_ROTATION[w] for w in kinds if w in _ROTATION)
        angles = np.stack([block[:, i] for i, w in enumerate(kinds) if w in _ROTATION], 1) if axes else None
        rotations[:, k] = euler_matrices(angles, axes) if axes else np.eye(3)
        for i, w in enumerate(kinds):
            if w in _POSITION:
                if k != 0:
                    raise MocapFileError(path, None, f"joint {names[k]!r} has position channels; only the root may")
                root_positions[:, _POSITION[w]] = block[:, i]
    # the root's OFFSET is added by forward kinematics; position channels replace nothing else
    point_names = list(names)
    point_nodes = list(range(len(names)))
    tips = [np.zeros(3)] * len(names)
    for parent, offset in end_sites:
        point_names.append(f"{names[parent]}_end")
        point_nodes.append(parent)
        tips.append(offset)
    skeleton = Skeleton(names, parents, np.array(offsets), point_names, point_nodes, np.array(tips))
    return Motion(skeleton, rotations, root_positions, float(header["frame time"]), str(path))
