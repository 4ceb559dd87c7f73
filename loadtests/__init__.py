"""Locust users that shop like people and measure session loss; see ``locustfile.py``."""
