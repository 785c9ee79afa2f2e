"""Pure ML library: data parsing, model loading, training, evaluation.

Nothing in this package imports Django, DRF, Channels or ``jobs.models``: a worker,
a script or a notebook can call it directly, and a test checks that importing it
loads no ``django`` module.
"""
