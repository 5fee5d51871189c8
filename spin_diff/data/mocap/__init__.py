"""Motion capture in: ASF/AMC and BVH readers, forward kinematics of their skeletons, and
retargeting to the body model's 24 SMPL joint rotations.

* :mod:`.skeleton`: the common form every reader produces (a joint tree with rest offsets,
  per-frame local rotations and root positions) and its forward kinematics.
* :mod:`.asf_amc`, :mod:`.bvh`: the readers; malformed files raise :class:`MocapFileError`
  naming file and line.
* :mod:`.retarget`: the correspondence tables (one per source skeleton, in one place) and the
  batched 3D fit of the body model's joints and bone directions to the source's.
* :mod:`.importer`: files and folders to an SMPL pose set: subsampling of near-duplicate
  frames, dropping badly retargeted frames, splits by clip or subject, provenance.
"""

from spin_diff.data.mocap.skeleton import MocapFileError, Motion, Skeleton, forward_kinematics

__all__ = ["MocapFileError", "Motion", "Skeleton", "forward_kinematics"]
