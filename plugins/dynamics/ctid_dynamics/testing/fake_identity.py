"""The identity side of the fake Dynamics: Entra ID and AD FS token endpoints, NTLM on the Web API.

Mixed into :class:`~ctid_dynamics.testing.fake_dynamics.FakeDynamics`, whose state it uses
(``tenant``, ``client_id``, ``client_secret``, ``url``, ``adfs_users``, ``tokens``, counters).
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

from quart import Response, request

from .fake_schema import ODataError


class IdentityMixin:
    tenant: str
    client_id: str
    client_secret: str
    url: str
    adfs_users: dict[str, str]
    tokens: set[str]
    token_requests: int
    ntlm_handshakes: int
    _ntlm: dict[Any, Any]
    certificates: dict[str, Any]  # thumbprint -> public key
    _ntlm_ok: set[Any]

    @staticmethod
    def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        response = Response(json.dumps(data), status=status, content_type="application/json; odata.metadata=minimal")
        response.headers["OData-Version"] = "4.0"
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response

    async def _oidc(self, tenant: str) -> Response:
        if tenant != self.tenant:
            return self._json({"error": "invalid_tenant", "error_description": f"AADSTS90002: Tenant '{tenant}' not found."}, 400)
        base = request.host_url.rstrip("/")
        return self._json({
            "issuer": f"{base}/{tenant}/v2.0",
            "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
            "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "token"],
        })

    async def _token(self, tenant: str) -> Response:
        self.token_requests += 1
        form = await request.form
        if form.get("grant_type") != "client_credentials":
            return self._json({"error": "unsupported_grant_type", "error_description": "AADSTS70003: unsupported grant type"}, 400)
        if form.get("client_id") != self.client_id:
            return self._json({"error": "unauthorized_client", "error_description":
                               f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not found in the directory."}, 400)
        if "client_assertion" in form:
            problem = self._check_assertion(form, f"{request.host_url.rstrip('/')}/{tenant}/oauth2/v2.0/token")
            if problem:
                return self._json({"error": "invalid_client", "error_description": problem}, 401)
        elif form.get("client_secret") != self.client_secret:
            return self._json({"error": "invalid_client", "error_description":
                               "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value."}, 401)
        if form.get("scope") != f"{self.url}/.default":
            return self._json({"error": "invalid_scope", "error_description":
                               f"AADSTS500011: The resource principal named {form.get('scope')} was not found in the tenant."}, 400)
        token = "fake-" + secrets.token_urlsafe(24)
        self.tokens.add(token)
        return self._json({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token})

    def _check_assertion(self, form: Any, token_endpoint: str) -> str | None:
        """A certificate credential: a JWT signed with the key of a registered certificate (x5t)."""
        import jwt

        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return "AADSTS50027: Invalid client_assertion_type."
        assertion = form["client_assertion"]
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return "AADSTS50027: JWT token is invalid or malformed."
        thumbprint = base64.urlsafe_b64decode(header.get("x5t", "") + "==").hex().upper()
        key = self.certificates.get(thumbprint)
        if key is None:
            return f"AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}']"
        try:
            claims = jwt.decode(assertion, key=key, algorithms=["RS256", "PS256"], audience=token_endpoint)
        except jwt.PyJWTError as exc:
            return f"AADSTS700027: Client assertion failed signature validation. ({exc})"
        if claims.get("iss") != self.client_id or claims.get("sub") != self.client_id:
            return "AADSTS700023: Client assertion issuer or subject is not the application."
        return None

    def trust_certificate(self, cert_pem: bytes) -> str:
        """Register a certificate on the app registration; returns its SHA-1 thumbprint (hex)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        cert = x509.load_pem_x509_certificate(cert_pem)
        thumbprint = cert.fingerprint(hashes.SHA1()).hex().upper()  # the thumbprint is SHA-1 by definition
        self.certificates[thumbprint] = cert.public_key()
        return thumbprint

    def _issue(self) -> Response:
        token = "fake-" + secrets.token_urlsafe(24)
        self.tokens.add(token)
        return self._json({"token_type": "Bearer", "expires_in": 3599, "access_token": token})

    async def _adfs_oidc(self) -> Response:
        base = request.host_url.rstrip("/")
        return self._json({
            "issuer": f"{base}/adfs",
            "token_endpoint": f"{base}/adfs/oauth2/token",
            "authorization_endpoint": f"{base}/adfs/oauth2/authorize",
            "jwks_uri": f"{base}/adfs/discovery/keys",
        })

    async def _adfs_token(self) -> Response:
        """AD FS: client credentials (a confidential client) or the password grant (a service account)."""
        self.token_requests += 1
        form = await request.form
        if form.get("client_id") != self.client_id:
            return self._json({"error": "invalid_client", "error_description": "MSIS9607: The 'client_id' parameter in the request is invalid."}, 400)
        if f"{self.url}/user_impersonation" not in (form.get("scope") or "").split():
            return self._json({"error": "invalid_scope", "error_description": "MSIS9602: The received 'scope' parameter is invalid."}, 400)
        grant = form.get("grant_type")
        if grant == "client_credentials" and form.get("client_secret") == self.client_secret:
            return self._issue()
        if grant == "password" and self.adfs_users.get(form.get("username", "")) == form.get("password"):
            return self._issue()
        return self._json({"error": "invalid_grant", "error_description": "MSIS9659: Invalid 'username' or 'password'."}, 400)

    def _authenticate(self, auth: str) -> None:
        """A valid bearer token, or Windows authentication (NTLM) on this connection."""
        if auth.startswith("Bearer ") and auth[7:] in self.tokens:
            return
        connection = request.scope.get("client")
        if not auth.startswith(("NTLM ", "Negotiate ")):
            if connection in self._ntlm_ok:
                return
            raise ODataError(401, "", "", {"WWW-Authenticate":
                             f"Bearer authorization_uri=https://login.microsoftonline.com/{self.tenant}/oauth2/authorize, resource_id={self.url}, NTLM"})
        import spnego

        scheme, _, blob = auth.partition(" ")
        acceptor = self._ntlm.pop(connection, None)
        if acceptor is None:
            acceptor = spnego.server(protocol="ntlm")
        try:
            answer = acceptor.step(base64.b64decode(blob))
        except Exception:  # spnego: a bad password or a broken token
            raise ODataError(401, "", "", {"WWW-Authenticate": "NTLM"}) from None
        if not acceptor.complete:
            self._ntlm[connection] = acceptor
            raise ODataError(401, "", "", {"WWW-Authenticate": f"{scheme} {base64.b64encode(answer or b'').decode()}"})
        self.ntlm_handshakes += 1
        self._ntlm_ok.add(connection)
