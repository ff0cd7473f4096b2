"""Deprecated alias of :mod:`gate.store`, kept only so code outside the gate (central's and e2e tests, benchmarks)
keeps importing while it moves to ``from gate.store import GateStore``. The gate itself never imports it.
Remove it once nothing outside the gate does."""

from __future__ import annotations

from .store import CacheView, ChangeResult, GateStore, OutboxRow, SnapshotSource, StagedSnapshot

GateCache = GateStore

__all__ = ["CacheView", "ChangeResult", "GateCache", "OutboxRow", "SnapshotSource", "StagedSnapshot"]
