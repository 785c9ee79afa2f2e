"""Dataset pages: list, upload, detail, delete."""
