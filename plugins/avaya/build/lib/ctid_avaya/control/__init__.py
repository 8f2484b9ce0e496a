"""Call-control backends of the Avaya connector: IP Office TAPI, AES Telephony Web Service, AES DMCC."""

from __future__ import annotations

from ctid_avaya.control.base import ControlBackend, refused


def build(config, instance: str) -> ControlBackend:
    """The backend object for one ``control:`` entry (imports only what that backend needs)."""
    if config.backend == "tapi":
        from ctid_avaya.control.tapi import TapiBackend

        return TapiBackend(config, instance)
    if config.backend == "aes-tws":
        from ctid_avaya.control.tws import TwsBackend

        return TwsBackend(config, instance)
    from ctid_avaya.control.dmcc import DmccBackend

    return DmccBackend(config, instance)


__all__ = ["ControlBackend", "build", "refused"]
