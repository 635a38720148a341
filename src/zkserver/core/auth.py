"""The auth packets of a client connection: addAuth, SASL steps, enforced authentication."""

from __future__ import annotations

import logging

from ..jute.codec import Reader, Writer
from ..jute.codes import Err
from ..jute.records import encode_reply
from ..tree.acl import Identity
from .model import Conn

log = logging.getLogger("zkserver.core")


class ClientAuth:
    """ServerCore's auth handling; a mixin over the core's connections, settings and policy."""

    def _auth(self, conn: Conn, xid: int, body: memoryview) -> None:
        r = Reader(body, max_len=self.settings.max_buffer)
        r.int()  # type: unused by every provider
        scheme = r.ustring() or ""
        auth = r.buffer() or b""
        granted = self.auth.authenticate(scheme, auth, conn.ip)
        if granted is None:
            log.warning("Authentication failed for scheme: %s", scheme)
            self._send(conn, encode_reply(xid, 0, Err.AUTH_FAILED))
            self._close(conn)
            return
        for ident in granted:
            if ident not in conn.ids:
                conn.ids.append(ident)
        self._send(conn, encode_reply(xid, 0, 0))

    def add_identities(self, cid: int, ids: list[Identity]) -> None:
        """Identities a connection proved outside the protocol (its TLS client certificate)."""
        conn = self.conns.get(cid)
        if conn is not None:
            conn.ids.extend(i for i in ids if i not in conn.ids)

    def _auth_enforced(self, conn: Conn, xid: int) -> bool:
        """AuthenticationHelper.enforceAuthentication: no id of an enforced scheme, no request."""
        if any(scheme in self.enforce_auth for scheme, _ in conn.ids):
            return True
        log.error("Client authentication scheme(s) %s does not match with any of the expected"
                  " authentication scheme %s, closing session.", [s for s, _ in conn.ids], sorted(self.enforce_auth))
        self._send(conn, encode_reply(xid, 0, Err.SESSION_CLOSED_REQUIRE_SASL_AUTH))
        self._close(conn)
        return False

    def _sasl(self, conn: Conn, xid: int, body: memoryview) -> None:
        """ZooKeeperServer.processSasl: one step of the connection's SASL exchange."""
        from ..security.sasl import SaslFailure, new_server

        token = Reader(body, max_len=self.settings.max_buffer).buffer() or b""
        settings = self.settings.sasl
        reply: bytes | None = None
        if settings is None:  # Apache: no SASL server for the connection, the NPE path answers OK
            log.error("cnxn.saslServer is null: cnxn object did not initialize its saslServer properly.")
        else:
            server = self.sasl_servers.get(conn.cid)
            if server is None:
                server = self.sasl_servers[conn.cid] = new_server(settings)  # GSSAPI or DIGEST-MD5
            try:
                reply = server.step(token)
            except SaslFailure as e:
                if not self._sasl_failed(conn, xid, e):
                    return
            else:
                if server.complete:
                    self._sasl_complete(conn, server.authorization_id)
        self._send(conn, encode_reply(xid, 0, 0, Writer().buffer(reply).getvalue()))

    def _sasl_complete(self, conn: Conn, authz: str) -> None:
        self.sasl_servers.pop(conn.cid, None)
        log.info("Session 0x%x: adding SASL authorization for authorizationID: %s",
                 (conn.session_id or 0) & 0xFFFFFFFFFFFFFFFF, authz)
        granted: list[Identity] = [("sasl", authz)]
        if authz in self.settings.sasl.super_users:
            granted.append(("super", ""))
            log.info("Session 0x%x: Authenticated Id '%s' as super user",
                     (conn.session_id or 0) & 0xFFFFFFFFFFFFFFFF, authz)
        self.add_identities(conn.cid, granted)

    def _sasl_failed(self, conn: Conn, xid: int, e: Exception) -> bool:
        """True when the connection stays (zookeeper.allowSaslFailedClients without enforcement)."""
        log.warning("Client %s failed to SASL authenticate: %s", conn.ip, e)
        required = "sasl" in self.enforce_auth
        if self.settings.sasl.allow_failed_clients and not required:
            log.warning("Maintaining client connection despite SASL authentication failure.")
            return True
        if required:
            log.warning("Closing client connection due to server requires client SASL authentication,but"
                        " client SASL authentication has failed, or client is not configured with SASL"
                        " authentication.")
        else:
            log.warning("Closing client connection due to SASL authentication failure.")
        err = Err.SESSION_CLOSED_REQUIRE_SASL_AUTH if required else Err.AUTH_FAILED
        self._send(conn, encode_reply(xid, 0, err, Writer().buffer(None).getvalue()))
        self._close(conn)
        return False
