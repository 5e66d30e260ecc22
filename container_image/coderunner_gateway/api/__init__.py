"""The HTTP API (v1, the README's "HTTP API (v1)"): one module per area, each with its routes.

``app.create_app`` composes them; each area is a small class over the :class:`~coderunner_gateway.gateway.Gateway`
whose ``routes()`` lists what it serves.
"""
