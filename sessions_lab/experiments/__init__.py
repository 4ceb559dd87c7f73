"""Experiments: fault timelines applied to the cluster while Locust shops, and their results."""
