"""vaora gate: the Raspberry Pi controller: read codes, decide locally, drive the turnstile, report."""

__version__ = "0.1.0"
