"""The plugin machinery: the backend protocols, hook specifications, the typed
pluggy facade, discovery of backends by URL scheme, and the retry helper that
every backend shares."""
