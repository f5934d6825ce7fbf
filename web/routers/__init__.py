"""One module per resource; :mod:`web.app` assembles them."""
