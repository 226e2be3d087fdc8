"""The plugin contract: everything a venue plugin implements and uses (``contract``),
the pluggy hook specification (``hookspecs``) and plugin discovery (``registry``)."""
