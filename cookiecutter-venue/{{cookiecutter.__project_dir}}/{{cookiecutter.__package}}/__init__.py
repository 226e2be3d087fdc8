"""SpiceFlow venue plugin for {{ cookiecutter.venue_name }} (venue ``{{ cookiecutter.venue_slug }}``)."""

__version__ = "0.1.0"
