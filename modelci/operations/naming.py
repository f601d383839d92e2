"""An ariadne-codegen plugin: snake_case names keep their digits (``p50``, ``sha256``).

ariadne-codegen splits numbers off as words (``p_50``, ``sha_256``); the hub's domain
and its users write ``p50`` and ``sha256``. Loaded by the code generator only (see
``[tool.ariadne-codegen]`` in pyproject.toml), never at run time.
"""

from __future__ import annotations

import re
from typing import Any

from ariadne_codegen.plugins.base import Plugin


class DigitsStayAttached(Plugin):  # type: ignore[misc]
    def process_name(self, name: str, node: Any = None) -> str:
        return re.sub(r"(?<=[a-z])_(?=\d)", "", name)
