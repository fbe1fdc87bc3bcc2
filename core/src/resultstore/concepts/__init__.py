"""The bottom floor: what is stored and the words for it (states, models, errors,
exception descriptions, converters) and the small parsers every floor above uses
(URLs, options, id checks). Nothing here knows about encoding or plugins."""
