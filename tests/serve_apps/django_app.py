"""A one-file Django project for tests/test_serve.py: sync and async views on sqlite3.

Django's ASGI handler runs each request in asgiref's ``ThreadSensitiveContext``,
which starts a daemon thread per request to join its executor: worker
interpreters must allow daemon threads for it.
"""

import os

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="only-for-tests",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ["SERVE_TEST_DJANGO_DB"],
        }
    },
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
    MIDDLEWARE=[],
)
django.setup()

from asgiref.sync import sync_to_async  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.db import connection  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402


def count_hits() -> int:
    """Records one hit in sqlite3 and returns how many there are."""
    with connection.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS hits (id INTEGER PRIMARY KEY)")
        cur.execute("INSERT INTO hits DEFAULT VALUES")
        cur.execute("SELECT COUNT(*) FROM hits")
        (count,) = cur.fetchone()
    return count


def sync_view(request):
    return JsonResponse({"view": "sync", "hits": count_hits()})


async def async_view(request):
    return JsonResponse({"view": "async", "hits": await sync_to_async(count_hits)()})


urlpatterns = [path("sync", sync_view), path("async", async_view)]

app = get_asgi_application()
