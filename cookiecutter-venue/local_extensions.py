"""Jinja settings for this template (loaded through ``_extensions`` in cookiecutter.json).

``trim_blocks``/``lstrip_blocks`` make a ``{% if %}`` line vanish entirely, so the
generated Python keeps exactly the blank lines and indentation written in the template.
"""

from jinja2.ext import Extension


class TidyBlocks(Extension):
    def __init__(self, environment):
        super().__init__(environment)
        environment.trim_blocks = True
        environment.lstrip_blocks = True
