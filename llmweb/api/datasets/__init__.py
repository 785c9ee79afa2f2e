"""Dataset endpoints: upload, inspect, list, detail, rows, stats, download, delete."""
