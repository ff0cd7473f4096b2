"""JSON Schema files generated from the payload models; ``python -m protocols.schemas`` rewrites them."""

from __future__ import annotations

import json
from pathlib import Path

from protocols.payloads import MODELS

SCHEMA_DIR = Path(__file__).parent


def generate() -> dict[str, str]:
    """Return the JSON Schema text of every payload model, keyed by file name."""
    files: dict[str, str] = {}
    for name, model in MODELS.items():
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://vaora.local/schemas/v1/{name}.json"
        files[f"{name}.json"] = json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    return files


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write the generated schemas into ``directory`` and return the paths written."""
    written = []
    for filename, text in generate().items():
        path = directory / filename
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
