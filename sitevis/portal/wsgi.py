"""The WSGI application gunicorn serves (`sitevis portal serve`)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sitevis.portal.settings")
application = get_wsgi_application()
