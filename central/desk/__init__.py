"""Guard desk: registering walk-ins, starting from the QR on their citizen ID card (CCCD)."""
