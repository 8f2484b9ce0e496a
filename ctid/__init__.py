"""ctid: a computer-telephony integration daemon built from pluggy plugins."""

import pluggy

__version__ = "0.1.0"

#: Marker for plugin hook implementations: ``@ctid.hookimpl def ctid_register_connectors(): ...``
hookimpl = pluggy.HookimplMarker("ctid")
