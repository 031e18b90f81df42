"""The Label Studio round trip's wire objects (`POST /api/datasets/{id}/import-label-studio`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

# Problems a report lists at most (all are counted).
MAX_PROBLEMS = 1000


class LabelStudioProblem(BaseModel):
    """What kept a task, or one of its annotations, out."""

    task: int  # the task's position in the file, from 0
    task_id: str | None = None  # Label Studio's id of the task
    sample_id: str | None = None
    annotation_id: str | None = None
    param: str | None = None
    message: str


class LabelStudioImportReport(BaseModel):
    """What importing a Label Studio export did. Importing the same file again applies
    nothing: its annotations are ``unchanged``."""

    object: Literal["dataset.label_studio_import"] = "dataset.label_studio_import"
    dataset_id: str
    format: Literal["json", "json-min"]
    tasks: int  # tasks in the file
    annotations: int  # annotations in the file
    applied: int  # reviews written: created or replaced
    created: int  # a reviewer's first review of the sample
    replaced: int  # a reviewer's changed annotation replaced their review
    unchanged: int  # imported before with the same content: nothing written
    cancelled: int  # skipped: cancelled in Label Studio
    superseded: int  # skipped: the same reviewer's later annotation of the sample counts
    edits: int  # applied reviews that changed the sample's content
    gold: int  # samples whose gold answers a ground-truth annotation set
    errors: int  # tasks or annotations left out (`problems` says why)
    problems: list[LabelStudioProblem]  # the first 1000
