"""Builds soap-relay (the metadata is in setup.cfg).

``SOAPRELAY_COMPILE=1 pip install --no-build-isolation .`` (with mypy and a C
compiler installed) also compiles the hot path named in pyproject.toml's
``[tool.soaprelay] compiled`` to C extensions with mypyc; a plain install, and
an editable one, stay pure Python.
"""

import os
import tomllib

from setuptools import setup


def _ext_modules() -> list:
    if os.environ.get("SOAPRELAY_COMPILE") != "1":
        return []
    from mypyc.build import mypycify  # only the accelerated build needs mypy

    with open("pyproject.toml", "rb") as file:
        modules = tomllib.load(file)["tool"]["soaprelay"]["compiled"]
    return mypycify(modules, opt_level="3")


setup(ext_modules=_ext_modules())
