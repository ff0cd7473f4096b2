"""Development and test tooling, outside the runtime packages: free ports, a private Mosquitto, an SMTP
catcher, and the one-command demo (``make demo`` runs ``python -m devtools.demo``).

Used by the test fixtures in ``tests/conftest.py``, the benchmarks and the demo. It is not part of the installed
distribution (``pyproject.toml`` packages only gate, central and protocols), and no runtime module imports it.
"""

from devtools.broker import BrokerError, LocalBroker
from devtools.mailcatcher import MailCatcher
from devtools.ports import free_port

__all__ = ["BrokerError", "LocalBroker", "MailCatcher", "free_port"]
