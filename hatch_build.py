"""Hatchling build hook: compile the book's hot loop (``_levels_c.pyx``) with Cython.

The extension is optional by design: without Cython, setuptools or a C compiler (or with
``SPICEFLOW_NO_EXTENSIONS=1``) the build warns and ships the pure-Python loop, which
``spiceflow_core/book/orderbook.py`` falls back to. Wheels are built normally; editable
installs compile in place (the ``.so`` lands next to the ``.pyx``, git-ignored), so
``./dev setup`` rebuilds it when the ``.pyx`` changes.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

EXTENSIONS = {"spiceflow_core.book._levels_c": "spiceflow_core/book/_levels_c.pyx"}


class CythonBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel" or os.environ.get("SPICEFLOW_NO_EXTENSIONS"):
            return
        try:
            built = self._compile()
        except Exception as exc:  # no Cython / setuptools / compiler: pure Python it is
            self.app.display_warning(f"spiceflow-core: compiled book loop not built ({exc}); using pure Python")
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        for module, so_path in built.items():
            target = module.replace(".", "/") + so_path.name[so_path.name.index(".") :]
            if version == "editable":
                shutil.copy2(so_path, Path(self.root) / target)  # imported from the source tree
            else:
                build_data["force_include"][str(so_path)] = target

    def _compile(self) -> dict[str, Path]:
        from Cython.Build import cythonize
        from setuptools import Distribution, Extension

        work = Path(tempfile.mkdtemp(prefix="spiceflow-ext-"))
        root = Path(self.root)
        extensions = [Extension(name, [str(root / pyx)]) for name, pyx in EXTENSIONS.items()]
        modules = cythonize(extensions, build_dir=str(work / "c"), quiet=True, language_level=3)
        dist = Distribution({"name": "spiceflow-core", "ext_modules": modules})
        cmd = dist.get_command_obj("build_ext")
        cmd.build_lib = str(work / "lib")
        cmd.build_temp = str(work / "tmp")
        cmd.ensure_finalized()
        cmd.run()
        out = {}
        for name in EXTENSIONS:
            out[name] = work / "lib" / cmd.get_ext_filename(name)
            if not out[name].is_file():
                raise FileNotFoundError(out[name])
        print(f"spiceflow-core: compiled {', '.join(EXTENSIONS)} for Python {sys.version.split()[0]}", file=sys.stderr)
        return out
