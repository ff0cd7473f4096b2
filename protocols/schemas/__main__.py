"""Regenerate the JSON Schema files: ``python -m protocols.schemas``."""

from protocols.schemas import write

for path in write():
    print(path)
