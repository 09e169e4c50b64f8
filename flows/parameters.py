"""Top-level flow parameters taken from one pydantic model.

Prefect merges a run's parameters with a deployment's presets one top-level key at a time, so a
flow that takes a single nested object loses the whole preset on a partial override
(`prefect deployment run --params`, `run_deployment`, an automation's RunDeployment). Giving the
flow one parameter per field keeps the model the single definition of names, types, bounds,
defaults and descriptions while every key merges on its own.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel

F = TypeVar("F", bound=Callable[..., Any])


def _annotation(field: Any) -> Any:
    """The field's type with its constraints (bounds, patterns) attached, as Prefect needs."""
    if not field.metadata:
        return field.annotation
    return Annotated[(field.annotation, *field.metadata)]


def parameters_of(model: type[BaseModel]) -> Callable[[F], F]:
    """Give a `**parameters` function one keyword parameter per field of `model`.

    The signature carries each field's type, constraints and default (Prefect builds the
    deployment's parameter schema and validates runs from it); the docstring's Args section
    carries the descriptions, which is where Prefect reads parameter descriptions from.
    """

    def apply(fn: F) -> F:
        signature = inspect.signature(fn)
        parameters = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=field.get_default(call_default_factory=True),
                annotation=_annotation(field),
            )
            for name, field in model.model_fields.items()
        ]
        fn.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        args = "\n".join(
            f"    {name}: {' '.join((field.description or name).split())}"
            for name, field in model.model_fields.items()
        )
        fn.__doc__ = f"{inspect.getdoc(fn) or ''}\n\nArgs:\n{args}\n"
        return fn

    return apply
