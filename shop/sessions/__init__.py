"""Session engines of the shop: Django's own, each changed in one place (see each module)."""
