"""Guard desk: registering walk-ins, starting from the QR on their citizen ID card (CCCD).

``bp`` is the desk's blueprint (pages under ``/ban-tiep-don``, role guard); :mod:`central.desk.cccd` parses
the card's QR text.
"""
