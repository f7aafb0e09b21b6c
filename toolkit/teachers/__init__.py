"""Teachers: the ensemble, the knowledge-graph teacher, a user's module or scores file, each a kind
(`protocol.Teacher`) listed once in `registry.KINDS`. The recipe calls `check`, `inputs`, `obtain` and
`phases`; `python -m toolkit train-teacher` calls `train_only`. Importing this is light (no numpy,
no torch): the kinds import what they need when they are obtained."""

from toolkit.teachers.protocol import Teacher, TeacherInputs
from toolkit.teachers.registry import (KINDS, check, inputs, kind, named, obtain, phases, picked_by, train_only,
                                       trainable, usage)

__all__ = ["KINDS", "Teacher", "TeacherInputs", "check", "inputs", "kind", "named", "obtain", "phases", "picked_by",
           "train_only", "trainable", "usage"]
