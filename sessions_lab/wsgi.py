"""WSGI entry point: gunicorn serves ``sessions_lab.wsgi:application`` in every instance."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sessions_lab.settings")
application = get_wsgi_application()
