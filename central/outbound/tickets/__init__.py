"""Tickets a delegate receives: the printable PDF, the calendar entry and the e-mail that carries them."""
