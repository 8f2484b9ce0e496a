"""The one exception tree of ctid.

Every error ctid raises on purpose derives from :class:`CtidError`::

    CtidError
    ├── ConfigError          bad configuration; carries the YAML path (and file/line when known)
    ├── PluginLoadError      a plugin's entry point failed to import or register
    ├── PluginError          a plugin misbehaved at run time (bad return value, crashed hook)
    ├── AuthError            missing / bad credentials (HTTP 401)
    │   └── ForbiddenError   authenticated but not allowed (HTTP 403)
    ├── RequestError         a client sent something ctid cannot accept (HTTP 4xx, stable ``error`` id)
    │   ├── NotFoundError    (HTTP 404)
    │   └── CapabilityError  the connector cannot do this command (HTTP 409)
    ├── StoreError           the database failed
    └── UpstreamError        a remote system failed (carries ``retry_after`` when it said so)
        ├── PBXError
        └── CRMError

Errors from dependencies are translated at the boundary with ``raise ... from exc``.
The CLI prints a ``CtidError`` as one line on stderr and exits with its ``exit_code``;
the web layer answers with ``status`` and ``{"error": error_id, "message": str(exc)}``.
"""

from __future__ import annotations


class CtidError(Exception):
    """Root of every error ctid raises on purpose."""

    exit_code = 1
    status = 500
    error_id = "internal"

    def __init__(self, message: str = "", *, error_id: str | None = None, status: int | None = None):
        super().__init__(message)
        if error_id is not None:
            self.error_id = error_id
        if status is not None:
            self.status = status


class ConfigError(CtidError):
    """The configuration is invalid. ``path`` is the dotted YAML path, ``source`` is ``file:line``."""

    exit_code = 2
    error_id = "config_invalid"

    def __init__(self, message: str, *, path: str = "", source: str = ""):
        self.path = path
        self.source = source
        self.reason = message
        where = ": ".join(part for part in (source, path) if part)
        super().__init__(f"{where}: {message}" if where else message)


class PluginLoadError(CtidError):
    """A plugin could not be loaded (import error, bad registration)."""

    exit_code = 3
    error_id = "plugin_load_failed"


class PluginError(CtidError):
    """A plugin returned something unusable or crashed inside a hook."""

    error_id = "plugin_failed"


class AuthError(CtidError):
    status = 401
    exit_code = 4
    error_id = "unauthorized"


class ForbiddenError(AuthError):
    status = 403
    error_id = "forbidden"


class RequestError(CtidError):
    """Bad input from a client (webhook body, REST payload, CLI argument)."""

    status = 400
    exit_code = 2
    error_id = "bad_request"


class NotFoundError(RequestError):
    status = 404
    error_id = "not_found"


class CapabilityError(RequestError):
    status = 409
    error_id = "capability_missing"


class StoreError(CtidError):
    status = 503
    error_id = "store_unavailable"


class UpstreamError(CtidError):
    """A remote system (PBX, CRM) failed. ``retry_after`` is seconds the remote asked us to wait."""

    status = 502
    error_id = "upstream_failed"

    def __init__(
        self,
        message: str = "",
        *,
        error_id: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        retryable: bool = True,
        code: str | None = None,
    ):
        super().__init__(message, error_id=error_id, status=status)
        self.retry_after = retry_after
        self.retryable = retryable
        self.code = code


#: The HTTP status of a PBX failure, by the family of its id (the part before ``:``): the one rule
#: every connector follows (docs/plugins.md "Connectors", docs/hub-protocol.md). Any other ``pbx_*``
#: id (unreachable, timeout, bad answer, unauthorized, ...) is the upstream's fault: 502.
PBX_STATUS = {
    "pbx_refused": 409,  # the PBX said no to a valid request; ``pbx_refused:<reason>`` when it names one
    "pbx_throttled": 429,  # the PBX's rate limit; ``retry_after`` becomes the Retry-After header
}


class PBXError(UpstreamError):
    """A PBX failed or said no. Unless ``status`` is given, it follows from the id (:data:`PBX_STATUS`),
    so every connector answers the same status for the same kind of failure."""

    error_id = "pbx_failed"

    def __init__(self, message: str = "", *, error_id: str | None = None, status: int | None = None,
                 retry_after: float | None = None, retryable: bool = True, code: str | None = None):
        if status is None:
            status = PBX_STATUS.get((error_id or self.error_id).split(":", 1)[0])
        super().__init__(message, error_id=error_id, status=status, retry_after=retry_after,
                         retryable=retryable, code=code)


class CRMError(UpstreamError):
    error_id = "crm_failed"
