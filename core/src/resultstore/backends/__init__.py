"""The built-in backends: ``memory://`` (reference), ``sqlite://`` (embedded
default), and the generic :class:`~resultstore.KeyValueBackend`."""
