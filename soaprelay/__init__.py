"""The ``soaprelay`` command line, above the relay and the bindings.

``soaprelay serve`` runs the relay (:mod:`relay`), ``soaprelay forward`` an
on-premises forwarder (:mod:`bindings`), ``soaprelay token`` signs a SAS token
(:mod:`hc`).  It is the one package that may import both sides; see
:mod:`soaprelay.cli`.  ``python -m soaprelay`` is the same command.
"""
