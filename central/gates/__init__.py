"""The gate fleet page (organisers): every gate's state, and commands with their acknowledgement."""
