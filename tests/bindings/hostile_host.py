"""A RelayServiceHost in its own process, for tests that measure its memory.

``python -m tests.bindings.hostile_host CONNECTION_STRING ENTITY [MAX_RECEIVED_MESSAGE_SIZE]``
prints ``ready`` once online and serves a Spyne ``Notes`` service until its stdin closes.
"""

from __future__ import annotations

import sys

from spyne import Application, Array, Integer, ServiceBase, Unicode, rpc
from spyne.protocol.soap import Soap11

from bindings import BasicHttpRelayBinding, RelayServiceHost

TNS = "urn:soap-relay:notes"


class Notes(ServiceBase):  # type: ignore[misc]
    @rpc(Array(Unicode), _returns=Integer)  # type: ignore[misc]
    def Count(ctx, notes):  # type: ignore[no-untyped-def]
        """Total characters of the notes."""
        return sum(len(note or "") for note in notes or ())


def notes_app() -> Application:
    return Application([Notes], tns=TNS, in_protocol=Soap11(validator="lxml"),
                       out_protocol=Soap11())


def main() -> None:
    connection_string, entity = sys.argv[1], sys.argv[2]
    options = {"max_received_message_size": int(sys.argv[3])} if len(sys.argv) > 3 else {}
    binding = BasicHttpRelayBinding(**options)  # type: ignore[arg-type]
    with RelayServiceHost(notes_app(), connection_string=f"{connection_string};EntityPath={entity}",
                          binding=binding):
        print("ready", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
