"""ION export lines to wire-format items, read with amazon-ion (the reference parser).

DynamoDB writes one ``{Item:{...}}`` struct per line (the first line after the ``$ion_1_0`` version
marker); numbers are Ion decimals, sets are lists annotated ``$dynamodb_SS`` / ``$dynamodb_NS`` /
``$dynamodb_BS``, binary is a blob, null is ``null``.
"""

from __future__ import annotations

from typing import Any

from amazon.ion import simpleion
from amazon.ion.core import IonType

from dynamo2mongo.export import MalformedRecord

_SETS = {"$dynamodb_SS": "SS", "$dynamodb_NS": "NS", "$dynamodb_BS": "BS"}


def _number(value: Any, where: str) -> str:
    if value.ion_type is IonType.DECIMAL:
        return str(value)
    if value.ion_type is IonType.INT and not isinstance(value, bool):
        return str(int(value))
    raise MalformedRecord(f"{where}: a number must be an Ion decimal or int, got {value.ion_type.name}")


def _value(value: Any, where: str) -> dict[str, Any]:
    ion_type = getattr(value, "ion_type", None)
    if ion_type is None:
        raise MalformedRecord(f"{where}: unexpected value {value!r:.80}")
    if value.ion_annotations and ion_type is IonType.LIST:
        kind = _SETS.get(value.ion_annotations[0].text)
        if kind is None:
            raise MalformedRecord(f"{where}: unknown annotation {value.ion_annotations[0].text!r}")
        if kind == "SS":
            if not all(getattr(v, "ion_type", None) is IonType.STRING for v in value):
                raise MalformedRecord(f"{where}: $dynamodb_SS elements must be strings")
            return {"SS": [str(v) for v in value]}
        if kind == "NS":
            return {"NS": [_number(v, where) for v in value]}
        if not all(getattr(v, "ion_type", None) is IonType.BLOB for v in value):
            raise MalformedRecord(f"{where}: $dynamodb_BS elements must be blobs")
        return {"BS": [bytes(v) for v in value]}
    if value.ion_annotations:
        raise MalformedRecord(f"{where}: unexpected annotation on a {ion_type.name}")
    if ion_type is IonType.STRING:
        return {"S": str(value)}
    if ion_type in (IonType.DECIMAL, IonType.INT):
        return {"N": _number(value, where)}
    if ion_type is IonType.STRUCT:
        return {"M": {name: _value(inner, f"{where}.{name}") for name, inner in value.items()}}
    if ion_type is IonType.LIST:
        return {"L": [_value(inner, f"{where}[{i}]") for i, inner in enumerate(value)]}
    if ion_type is IonType.BOOL:
        return {"BOOL": bool(value)}
    if ion_type is IonType.NULL:
        return {"NULL": True}
    if ion_type is IonType.BLOB:
        return {"B": bytes(value)}
    raise MalformedRecord(f"{where}: Ion {ion_type.name} has no DynamoDB type")


def parse_line(line: bytes | str) -> dict[str, Any]:
    try:
        record = simpleion.loads(line, single_value=True)
    except Exception as error:  # amazon-ion raises plain Exceptions (IonException, ValueError, ...)
        raise MalformedRecord(f"not valid Ion: {error}") from None
    if getattr(record, "ion_type", None) is not IonType.STRUCT or "Item" not in record:
        raise MalformedRecord("expected a struct {Item:{...}}")
    item = record["Item"]
    if getattr(item, "ion_type", None) is not IonType.STRUCT:
        raise MalformedRecord("Item must be a struct")
    return {name: _value(value, name) for name, value in item.items()}
