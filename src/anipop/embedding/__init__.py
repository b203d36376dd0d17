"""Embedding: the text and image encoders, their per-item cache, the embed step and its Dask shards.

One subpackage because these files change together and only the embed step (and serving, through the
encoders) uses them; every other step reads the matrices through anipop.artifacts.
"""
