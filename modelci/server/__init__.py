"""The running service: settings, app, storage, embedded database and CLI."""
