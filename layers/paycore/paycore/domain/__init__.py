"""The trade domain: plain Python, no I/O."""
