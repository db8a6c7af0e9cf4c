"""The engines' own waiters, kept as botocore waiter models in JSON next to the code that uses them
(``<engine>/waiters.json``), as the Amazon provider keeps its ``waiters/*.json``: what counts as done,
failed or still going is data, and botocore's waiter does the polling."""

from __future__ import annotations

import json
from pathlib import Path

from botocore.exceptions import WaiterError
from botocore.waiter import WaiterModel


def waiter_model(package_file: str) -> WaiterModel:
    """The waiter model in the ``waiters.json`` beside ``package_file`` (a module's ``__file__``)."""
    return WaiterModel(json.loads(Path(package_file).with_name("waiters.json").read_text()))


def timed_out(error: WaiterError) -> bool:
    """Whether the waiter gave up after its last attempt (rather than on a failure state or an error)."""
    return "Max attempts exceeded" in str(error)
