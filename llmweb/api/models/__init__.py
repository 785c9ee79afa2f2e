"""Model registry endpoints: upload, preset, hub, card, lineage, download, presets."""
