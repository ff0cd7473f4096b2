"""The guard's status page on the gate: a view model (``model``) and a small stdlib HTTP/SSE server (``server``).

Usage: ``StatusServer(gate, host="127.0.0.1", port=8080).start()`` where ``gate.status_view()`` returns a
:class:`GateView`; ``stop()`` on shutdown.
"""

from .model import GateView, ScanView, StatusSource, to_json
from .server import StatusServer

__all__ = ["GateView", "ScanView", "StatusServer", "StatusSource", "to_json"]
