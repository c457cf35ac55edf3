"""Environment overrides checked before pydantic-settings reads them.

pydantic-settings silently ignores a variable whose section is misspelled
(``JOBQUEUE_WROKER__COUNT``), and a list or map that is not JSON
(``JOBQUEUE_WORKER__PRIORITIES=high,low``) surfaces as a 170-line ``SettingsError`` that names
neither the variable nor the expected form. This walk over the settings model finds both and
says, per variable, what is wrong and how to write it.

Only names with the nested delimiter are checked: ``JOBQUEUE_CONFIG``, ``JOBQUEUE_CRASH_AT`` and
the ``JOBQUEUE_JOB_*`` variables an exec handler sees are not settings.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

PREFIX = "JOBQUEUE_"
DELIMITER = "__"


def check_environment(model: type[BaseModel], environ: Mapping[str, str]) -> list[str]:
    """One problem line per ``JOBQUEUE_*__*`` variable that names no setting or cannot parse."""
    problems = []
    for name, value in sorted(environ.items()):
        upper = name.upper()
        if not upper.startswith(PREFIX) or DELIMITER not in upper:
            continue
        path = upper.removeprefix(PREFIX).lower().split(DELIMITER)
        problem = _check(model, path, value)
        if problem:
            problems.append(f"{name}: {problem}")
    return problems


def env_name(path: list[str]) -> str:
    return PREFIX + DELIMITER.join(path).upper()


def _check(model: type[BaseModel], path: list[str], value: str) -> str | None:
    """Follow ``path`` down the model; complain where it leaves it or where JSON is due."""
    current = model
    for depth, part in enumerate(path):
        field = current.model_fields.get(part)
        if field is None:
            return _unknown(current, path, depth)
        annotation, rest = field.annotation, path[depth + 1 :]
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if not rest:
                return _json_problem(value, dict, 'a JSON object such as {"key": "value"}')
            current = annotation
            continue
        if get_origin(annotation) is dict:  # the keys below a map are the user's own
            return None if rest else _json_problem(value, dict, _example(field, "{}"))
        if rest:
            return f"{'.'.join(path[: depth + 1])} has no keys below it"
        if get_origin(annotation) is list:
            return _json_problem(value, list, _example(field, '["a","b"]'))
        return None
    return None


def _unknown(model: type[BaseModel], path: list[str], depth: int) -> str:
    dotted = ".".join(path[: depth + 1])
    close = difflib.get_close_matches(path[depth], list(model.model_fields), n=1)
    if not close:
        return f"no setting {dotted}"
    suggestion = env_name([*path[:depth], close[0], *path[depth + 1 :]])
    return f"no setting {dotted} (did you mean {suggestion}?)"


def _example(field: FieldInfo, fallback: str) -> str:
    kind = "list" if fallback.startswith("[") else "object"
    default: Any = field.get_default(call_default_factory=True)
    sample = json.dumps(default, separators=(",", ":")) if default else fallback
    return f"a JSON {kind} such as {sample}"


def _json_problem(value: str, kind: type, expected: str) -> str | None:
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if isinstance(parsed, kind):
        return None
    shown = value if len(value) <= 60 else value[:59] + "…"
    return f"expected {expected}, got {shown!r}"
