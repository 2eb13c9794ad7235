"""Web framework integrations: a full queue becomes HTTP 429 with ``Retry-After``.

* ``relier.integrations.fastapi.register(app)`` (FastAPI or Starlette)
* ``relier.integrations.flask.register(app)``
* ``relier.integrations.django.AdmissionMiddleware`` and ``settings.RELIER``

Each module imports its framework when it is imported, and says what to install when the
framework is missing; Relier itself never imports them.
"""
