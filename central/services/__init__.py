"""Central's domain services: plain functions over the models, time passed in as ``now=``."""
