# The template's files are Jinja sources, not importable Python: keep pytest out of here.
# (tests/test_cookiecutter.py generates plugins from it and runs their tests.)
collect_ignore_glob = ["*"]
