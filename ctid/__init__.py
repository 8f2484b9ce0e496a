"""ctid: a computer-telephony integration daemon built from pluggy plugins."""

import pluggy

__version__ = "0.1.0"

#: The version of the plugin contract (hooks, base classes, helpers): ``MAJOR.MINOR``. A plugin
#: declares the version it was written for in its module (``CTID_CONTRACT = "2.0"``); it loads
#: when the major versions are equal and its minor version is not newer than this one. Minor
#: versions add to the contract; a major version removes or changes something.
CONTRACT_VERSION = "2.0"

#: Marker for plugin hook implementations: ``@ctid.hookimpl def ctid_register_connectors(): ...``
hookimpl = pluggy.HookimplMarker("ctid")
