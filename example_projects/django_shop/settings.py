"""Settings of the shop. The session part is four lines: sessionkit's engine and middleware,
and the cookie name, key, store and timeouts shared with the Flask and FastAPI apps."""

from __future__ import annotations

from pathlib import Path

from example_projects.shared import config

HERE = Path(__file__).resolve().parent

SECRET_KEY = config.secret_key()
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "sessionkit_django",
    "example_projects.django_shop.apps.ShopConfig",
]
MIDDLEWARE = [
    "example_projects.django_shop.middleware.activity_scope",
    "sessionkit_django.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

# -- sessions: the same cookie, key, store and timeouts as the other two apps -----------
SESSION_ENGINE = "sessionkit_django.engine"
SESSION_COOKIE_NAME = config.COOKIE_NAME
SESSIONKIT = {
    "STORE": config.store_url(),
    "IDLE_TIMEOUT": config.IDLE_TIMEOUT,
    "ABSOLUTE_TIMEOUT": config.ABSOLUTE_TIMEOUT,
    # session.user_id is the username, the key the Flask and FastAPI apps know users by
    "USER_KEY": "username",
}
# Messages live in the session, so they survive a redirect to another worker or app.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

ROOT_URLCONF = "example_projects.django_shop.urls"
WSGI_APPLICATION = "example_projects.django_shop.wsgi.application"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(config.data_dir() / "shop.sqlite3"),
    }
}
TEMPLATES = [
    {
        # Jinja2, so that the three apps share one layout (shared/templates/base.html).
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [str(HERE / "templates"), str(config.TEMPLATES)],
        "OPTIONS": {"autoescape": True},
    }
]
LOGIN_URL = "/login/"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"sessionkit": {"handlers": ["console"], "level": "WARNING"}},
}
