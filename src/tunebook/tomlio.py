"""TOML read with limits: every file tunebook reads (study files, run records, the search
ledger, the planner's file) goes through :func:`loads`, so a hostile one is a clear
``TOMLDecodeError`` — never a ``RecursionError`` from a thousand nested arrays, nor
gigabytes parsed."""

from __future__ import annotations

import tomllib
from typing import Any

#: The largest TOML document read (a study file is a few KB; a ledger of 100 000
#: proposals a few MB).
MAX_TOML_BYTES = 16 << 20


def loads(text: str) -> dict[str, Any]:
    if len(text) > MAX_TOML_BYTES:
        raise tomllib.TOMLDecodeError(f"larger than {MAX_TOML_BYTES} characters, more than tunebook reads")
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise tomllib.TOMLDecodeError("nested too deeply (tables or arrays inside one another beyond what can be "
                                      "read)") from None
