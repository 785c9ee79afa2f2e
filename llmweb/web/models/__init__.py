"""Model pages: list, detail (card, lineage), preset, upload and hub forms."""
