"""Development and test helpers that run real components: free ports, a private Mosquitto, an SMTP catcher.

Used by the test fixtures in ``tests/conftest.py`` and by the demo. Nothing here runs in production.
"""

from central.devtools.broker import BrokerError, LocalBroker
from central.devtools.mailcatcher import MailCatcher
from central.devtools.ports import free_port

__all__ = ["BrokerError", "LocalBroker", "MailCatcher", "free_port"]
