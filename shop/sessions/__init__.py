"""Session engines of the shop: Django's own, each changed where its module says, all writing
through one serializer that encrypts when keys are set (``encryption.py``)."""
