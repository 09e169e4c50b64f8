"""Check Bedrock requests against botocore's service model before they leave the process.

botocore validates only types, required members, `min`, unions and documents
(`ParamValidator.VALIDATED_METADATA_ATTRS`). The service also enforces enums, string
patterns and `max`; without a local check those mistakes surface only as a
ValidationException from AWS, often after a job has been queued for minutes.
`request_violations` reports both kinds, walking the operation's input shape alongside
the parameters. Patterns are full matches (`re.fullmatch`); the few patterns Python's
`re` cannot compile (`\\p{L}` classes) are skipped.

No Prefect here: boto3/botocore only, so the fake clients in the tests can use it too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Protocol

from botocore.client import ClientMeta
from botocore.model import ListShape, MapShape, ServiceModel, Shape, StructureShape
from botocore.validate import ParamValidator

from intent_router.errors import UserInputError

_SHOWN_VALUE_CHARS = 60
_SHOWN_PATTERN_CHARS = 80


class SupportsClientMeta(Protocol):
    """A boto3 client, or anything exposing the same `meta` (e.g. a test fake)."""

    @property
    def meta(self) -> ClientMeta: ...


def request_violations(
    service_model: ServiceModel, operation: str, params: Mapping[str, Any]
) -> list[str]:
    """Every problem with `params` for `operation` (API name), one short line each.

    botocore's own findings come first (unknown or missing members, types, `min`,
    unions), then enum, pattern and `max` violations. An empty list means valid.
    """
    shape = service_model.operation_model(operation).input_shape
    if shape is None:
        return [f"input: {operation} takes no parameters"] if params else []
    return shape_violations(shape, params)


def response_violations(
    service_model: ServiceModel, operation: str, response: Mapping[str, Any]
) -> list[str]:
    """Like `request_violations`, for a response against the output shape.

    `ResponseMetadata`, which boto3 adds to every response, is ignored.
    """
    shape = service_model.operation_model(operation).output_shape
    body = {key: value for key, value in response.items() if key != "ResponseMetadata"}
    if shape is None:
        return [f"output: {operation} returns no members"] if body else []
    return shape_violations(shape, body)


def shape_violations(shape: Shape, value: Any) -> list[str]:
    """botocore's findings for `value` against `shape`, then enum, pattern and `max`."""
    found = _botocore_violations(shape, value)
    _walk(shape, value, "", found)
    return found


def api_operation_name(client: SupportsClientMeta, method_name: str) -> str:
    """The API name for a boto3 method name: "converse" -> "Converse"."""
    try:
        return client.meta.method_to_api_mapping[method_name]
    except KeyError:
        service = client.meta.service_model.service_name
        raise ValueError(f"the {service} client has no method {method_name!r}") from None


def validate_request(
    client: SupportsClientMeta, operation_name: str, params: Mapping[str, Any]
) -> None:
    """Raise UserInputError naming every violation if `params` would be rejected.

    `operation_name` is the API name ("CreateModelCustomizationJob"); a boto3 method
    name ("create_model_customization_job") is accepted too.
    """
    service_model = client.meta.service_model
    if operation_name not in service_model.operation_names:
        operation_name = api_operation_name(client, operation_name)
    violations = request_violations(service_model, operation_name, params)
    if violations:
        listed = "; ".join(_one_line(violation) for violation in violations)
        raise UserInputError(
            f"invalid {service_model.service_name} {operation_name} request: {listed}"
        )


def _botocore_violations(shape: Shape, value: Any) -> list[str]:
    report = ParamValidator().validate(value, shape)
    if not report.has_errors():
        return []
    # One entry per error even when a reported value contains a newline; the
    # private members are used only if present, the public report otherwise.
    errors = getattr(report, "_errors", None)
    formatter = getattr(report, "_format_error", None)
    if isinstance(errors, list) and callable(formatter):
        return [str(formatter(error)) for error in errors]
    return str(report.generate_report()).splitlines()


def _walk(shape: Shape, value: Any, path: str, out: list[str]) -> None:
    if isinstance(shape, StructureShape):
        if shape.is_document_type or not isinstance(value, Mapping):
            return
        members = shape.members
        for key, item in value.items():
            if key in members:
                _walk(members[key], item, _child(path, key), out)
    elif isinstance(shape, ListShape):
        if isinstance(value, list | tuple):
            for index, item in enumerate(value):
                _walk(shape.member, item, f"{path or 'input'}[{index}]", out)
    elif isinstance(shape, MapShape) and isinstance(value, Mapping):
        for key, item in value.items():
            _walk(shape.key, key, f"{path or 'input'} (key: {key})", out)
            _walk(shape.value, item, _child(path, str(key)), out)
    _check_constraints(shape, value, path or "input", out)


def _check_constraints(shape: Shape, value: Any, path: str, out: list[str]) -> None:
    metadata = shape.metadata
    if isinstance(value, str):
        enum = metadata.get("enum")
        if enum and value not in enum:
            out.append(f"{path}: {_show(value)} is not one of {', '.join(map(str, enum))}")
        pattern = metadata.get("pattern")
        if isinstance(pattern, str):
            compiled = _compiled(pattern)
            if compiled is not None and compiled.fullmatch(value) is None:
                out.append(f"{path}: {_show(value)} does not match {_describe(shape, pattern)}")
    maximum = metadata.get("max")
    if maximum is None or isinstance(value, bool):
        return
    if isinstance(value, str | bytes | bytearray | list | tuple | Mapping):
        if len(value) > maximum:
            out.append(f"{path}: length {len(value)} exceeds max {maximum}")
    elif isinstance(value, int | float) and value > maximum:
        out.append(f"{path}: {value!r} exceeds max {maximum}")


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _describe(shape: Shape, pattern: str) -> str:
    if len(pattern) <= _SHOWN_PATTERN_CHARS:
        return f"pattern {pattern!r} ({shape.name})"
    return f"the {shape.name} pattern ({len(pattern)} chars, see the botocore service model)"


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(value: str) -> str:
    shown = repr(value)
    if len(shown) > _SHOWN_VALUE_CHARS:
        return shown[: _SHOWN_VALUE_CHARS - 4] + "...'"
    return shown


def _one_line(text: str) -> str:
    return " ".join(text.split("\n"))
