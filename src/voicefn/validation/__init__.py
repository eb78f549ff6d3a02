"""Validation that reports every problem at once, each with a JSON path, what was found and the fix.

Checks run on the canonical document (see :mod:`voicefn.spec`); a dialect passes a ``locate``
function that turns a canonical path into the path of the user's own file, so a Bolna user reads
``$.value.param.order_id``, not our internal names.

One concept a module: :mod:`.problems` (the error model and JSON paths), :mod:`.hints`
(did-you-mean, value fixes), :mod:`.model_errors` (pydantic's errors as problems),
:mod:`.document` (the whole document), :mod:`.schema` (``parameters``), :mod:`.urls`,
:mod:`.actions`, :mod:`.placeholders`, :mod:`.store`, and a post-call mapping's
:mod:`.sources` and :mod:`.mapping`.
"""

from .document import FROM_CURL_TODO, validate_document
from .hints import did_you_mean, value_fix
from .mapping import check_mapping_sources
from .problems import FunctionValidationError, Locate, Path, Problem, Severity, json_path
from .sources import (
    CALL_SOURCES,
    SOURCE_ROOTS,
    TRANSCRIPT,
    MappingEntry,
    SourceType,
    mapping_entry,
    type_mismatch,
)
from .store import VARIABLE_NAME_RE
from .urls import check_url

__all__ = [
    "CALL_SOURCES",
    "FROM_CURL_TODO",
    "SOURCE_ROOTS",
    "TRANSCRIPT",
    "VARIABLE_NAME_RE",
    "FunctionValidationError",
    "Locate",
    "MappingEntry",
    "Path",
    "Problem",
    "Severity",
    "SourceType",
    "check_mapping_sources",
    "check_url",
    "did_you_mean",
    "json_path",
    "mapping_entry",
    "type_mismatch",
    "validate_document",
    "value_fix",
]
