"""Job pages: list, new (a form per kind, built from the registry), detail (live chart)."""
