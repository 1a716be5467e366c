"""Core of the compatibility gateway: settings, adapters (bus, store, cache), the outbound hub and
the app factory (`gateway.app.create_app`).

Kept free of imports with side effects, so gunicorn's master can read the settings before forking.
"""
