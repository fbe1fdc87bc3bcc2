"""How a result becomes bytes and back: codecs, compression, the self-describing
header and the size limit. Knows the stored concepts, nothing of plugins."""
