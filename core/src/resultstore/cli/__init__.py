"""The ``resultstore`` command line, on top of everything else: its commands,
the state they share, the terminal helpers, and the demo."""
