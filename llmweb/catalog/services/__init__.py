"""Writers of Dataset and RegisteredModel records (datasets.py, models.py)."""
