"""sessions lab: a Django shop behind nginx, six session strategies, and a lab that breaks it."""
