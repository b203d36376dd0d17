"""The embed step: every anime's and character's texts and portraits through the encoders (anipop.encoders),
per item through their cache, and its Dask shards. Every other step reads the matrices through anipop.core.artifacts.
"""
