"""The contract between gate and central: code formats, MQTT topics, payload models and reason codes.

Nothing in this package performs I/O beyond encoding, decoding and signing. Gate and central import these
definitions; neither restates them.
"""

PROTOCOL_VERSION = 1
