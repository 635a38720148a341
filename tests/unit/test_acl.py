"""ACLs and authentication: AuthPolicy on its own, then through the core with kazoo's codec.

Reference: Apache ZooKeeper 3.9 ZooKeeperServer.checkACL, PrepRequestProcessor.fixupACL,
FinalRequestProcessor getACL/whoAmI, DigestAuthenticationProvider, IPAuthenticationProvider,
AuthUtil.getClientInfos.
"""

from __future__ import annotations

import pytest
from kazoo.exceptions import AuthFailedError, InvalidACLError, NoAuthError
from kazoo.protocol.serialization import (
    Auth,
    Create,
    Delete,
    GetACL,
    GetChildren,
    GetData,
    SetACL,
    SetData,
    read_string,
)
from kazoo.security import (
    CREATOR_ALL_ACL,
    OPEN_ACL_UNSAFE,
    make_acl,
    make_digest_acl,
    make_digest_acl_credential,
)
from tests.unit.corehelper import XID_AUTH, CoreDriver, WhoAmI

from zkserver.core import CoreSettings
from zkserver.jute.codes import Err, Perm
from zkserver.tree.acl import (
    SUPER_IDENTITY,
    AuthPolicy,
    KeeperError,
    client_infos,
    digest_id,
    ip_acl_valid,
    ip_matches,
    mask_digests,
)

OPEN = OPEN_ACL_UNSAFE
ALICE = ("digest", make_digest_acl_credential("alice", "pw"))


# ====================================================================== AuthPolicy


class TestDigest:
    @pytest.mark.parametrize(("user", "password"), [("alice", "pw"), ("bob", ""), ("ünï", "cödé"), ("a", "b:c")])
    def test_digest_id_matches_kazoo(self, user, password):
        assert digest_id(f"{user}:{password}") == make_digest_acl_credential(user, password)

    def test_digest_id_without_colon(self):
        # DigestAuthenticationProvider.generateDigest: the user is everything before the first ':'.
        assert digest_id("nocolon").startswith("nocolon:")


class TestCheck:
    def test_world_anyone_and_perm_bits(self):
        p = AuthPolicy()
        acl = [(Perm.READ | Perm.WRITE, "world", "anyone")]
        assert p.check(acl, Perm.READ, [])
        assert p.check(acl, Perm.WRITE, [])
        assert not p.check(acl, Perm.DELETE, [])
        assert not p.check(acl, Perm.ADMIN, [("ip", "1.2.3.4")])
        # A combined mask passes when any entry grants any of its bits (getACL asks READ|ADMIN).
        assert p.check([(Perm.ADMIN, "world", "anyone")], Perm.READ | Perm.ADMIN, [])

    def test_empty_acl_allows_everything(self):
        p = AuthPolicy()
        assert p.check([], Perm.ALL, [])
        assert p.check(None, Perm.ALL, [])

    def test_digest_matches_exactly(self):
        p = AuthPolicy()
        acl = [(Perm.ALL, "digest", ALICE[1])]
        assert p.check(acl, Perm.READ, [("ip", "1.1.1.1"), ALICE])
        assert not p.check(acl, Perm.READ, [("digest", make_digest_acl_credential("alice", "other"))])
        assert not p.check(acl, Perm.READ, [("ip", ALICE[1])])  # the scheme must match too

    def test_digest_disabled(self):
        p = AuthPolicy(digest_enabled=False)
        assert not p.check([(Perm.ALL, "digest", ALICE[1])], Perm.READ, [ALICE])
        assert p.authenticate("digest", b"alice:pw", "1.1.1.1") is None

    @pytest.mark.parametrize(("client", "expr", "ok"), [
        ("10.1.2.3", "10.1.2.3", True),
        ("10.1.2.3", "10.1.2.4", False),
        ("10.1.2.3", "10.0.0.0/8", True),
        ("11.1.2.3", "10.0.0.0/8", False),
        ("10.1.2.3", "10.1.2.0/24", True),
        ("10.1.3.3", "10.1.2.0/24", False),
        ("10.1.2.3", "0.0.0.0/0", True),
        ("10.1.2.3", "10.1.2.3/33", False),
        ("10.1.2.3", "garbage", False),
        ("::1", "127.0.0.1", False),
        ("::1", "::1", True),
    ])
    def test_ip_matches(self, client, expr, ok):
        assert ip_matches(client, expr) is ok
        assert AuthPolicy().check([(Perm.READ, "ip", expr)], Perm.READ, [("ip", client)]) is ok

    def test_super_and_skip_acl_bypass(self):
        acl = [(Perm.READ, "digest", ALICE[1])]
        assert AuthPolicy().check(acl, Perm.ADMIN, [SUPER_IDENTITY])
        assert AuthPolicy(skip_acl=True).check(acl, Perm.ADMIN, [])
        assert not AuthPolicy().check(acl, Perm.ADMIN, [ALICE])

    def test_require_raises_no_auth(self):
        with pytest.raises(KeeperError) as e:
            AuthPolicy().require([(Perm.READ, "world", "anyone")], Perm.WRITE, [], "/x")
        assert e.value.code == Err.NO_AUTH


class TestAuthenticate:
    def test_digest_grants_digest_id(self):
        assert AuthPolicy().authenticate("digest", b"alice:pw", "1.1.1.1") == [ALICE]

    def test_super_digest_grants_super_first(self):
        p = AuthPolicy(super_digest=digest_id("super:secret"))
        assert p.authenticate("digest", b"super:secret", "1.1.1.1") == [SUPER_IDENTITY,
                                                                          ("digest", digest_id("super:secret"))]
        assert p.authenticate("digest", b"super:wrong", "1.1.1.1") == [("digest", digest_id("super:wrong"))]

    def test_ip_and_unknown_schemes(self):
        p = AuthPolicy()
        assert p.authenticate("ip", b"whatever", "9.9.9.9") == [("ip", "9.9.9.9")]
        assert p.authenticate("sasl", b"x", "9.9.9.9") is None
        assert p.authenticate("world", b"anyone", "9.9.9.9") is None


class TestFixup:
    def fix(self, acl, ids=(), **kw):
        return AuthPolicy(**kw).fixup("/p", acl, list(ids))

    def code(self, acl, ids=(), **kw):
        with pytest.raises(KeeperError) as e:
            self.fix(acl, ids, **kw)
        return e.value.code

    def test_duplicates_are_dropped(self):
        acl = [(31, "world", "anyone"), (31, "world", "anyone"), (1, "world", "anyone")]
        assert self.fix(acl) == ((31, "world", "anyone"), (1, "world", "anyone"))

    def test_empty_or_missing_is_invalid(self):
        assert self.code([]) == Err.INVALID_ACL
        assert self.code(None) == Err.INVALID_ACL

    def test_auth_expands_to_authenticated_digest_ids(self):
        ids = [("ip", "1.2.3.4"), ALICE, ("digest", "bob:x")]
        # Which ids it expands to; their order (Apache's Id-hash order) is tested in test_javaorder.
        expanded = self.fix([(Perm.READ, "auth", "")], ids)
        assert sorted(expanded) == sorted(((Perm.READ, *ALICE), (Perm.READ, "digest", "bob:x")))
        # ip is not an "authenticated" provider, and super has no provider at all.
        assert self.code([(31, "auth", "")], [("ip", "1.2.3.4"), SUPER_IDENTITY]) == Err.INVALID_ACL

    @pytest.mark.parametrize(("ident", "valid"), [
        ("alice:hash", True),
        (":hash", True),
        ("alice:hash:", True),  # Java's split drops trailing empty strings
        ("alice:", False),
        ("alice", False),
        ("a:b:c", False),
        ("", False),
    ])
    def test_digest_id_shape(self, ident, valid):
        acl = [(31, "digest", ident)]
        if valid:
            assert self.fix(acl) == ((31, "digest", ident),)
        else:
            assert self.code(acl) == Err.INVALID_ACL

    @pytest.mark.parametrize(("expr", "valid"), [
        ("10.0.0.1", True),
        ("10.0.0.0/8", True),
        ("10.0.0.0/32", True),
        ("10.0.0.0/33", False),
        ("10.0.0.0/-1", False),
        ("10.0.0.0/x", False),
        ("10.0.0", False),
        ("256.0.0.1", False),
        ("::1", True),
        ("fe80::/10", True),
        ("host.example", False),
    ])
    def test_ip_id_shape(self, expr, valid):
        assert ip_acl_valid(expr) is valid

    def test_ip_with_empty_prefix_length_is_invalid(self):
        """IPAuthenticationProvider.isValid: split on '/' (limit 2), Integer.parseInt('') fails."""
        assert ip_acl_valid("10.0.0.1/") is False

    def test_ip_octet_with_leading_zero_is_valid(self):
        """IPAuthenticationProvider.v4addr2Bytes parses each octet with Integer.parseInt: 01 is 1."""
        assert ip_acl_valid("10.0.0.01") is True
        assert ip_matches("10.0.0.1", "10.0.0.01") is True

    def test_other_schemes_are_invalid(self):
        assert self.code([(31, "world", "bob")]) == Err.INVALID_ACL
        assert self.code([(31, "super", "")]) == Err.INVALID_ACL
        assert self.code([(31, "sasl", "x")]) == Err.INVALID_ACL
        assert self.code([(31, "digest", "a:b")], digest_enabled=False) == Err.INVALID_ACL

    def test_one_bad_entry_fails_the_list(self):
        assert self.code([(31, "world", "anyone"), (31, "digest", "bad")]) == Err.INVALID_ACL

    def test_auth_with_null_id_expands(self):
        """PrepRequestProcessor.fixupACL rejects only a null Id or scheme; an 'auth' entry's id is
        never looked at."""
        assert self.fix([(31, "auth", None)], [ALICE]) == ((31, *ALICE),)


class TestHelpers:
    def test_mask_digests(self):
        acl = [(31, "digest", "alice:hash="), (1, "world", "anyone"), (1, "ip", "1.2.3.4")]
        assert mask_digests(acl) == [(31, "digest", "alice:x"), (1, "world", "anyone"), (1, "ip", "1.2.3.4")]

    def test_client_infos(self):
        ids = [("ip", "1.2.3.4"), SUPER_IDENTITY, ("digest", "alice:hash")]
        assert sorted(client_infos(ids)) == sorted([("ip", "1.2.3.4"), ("super", ""), ("digest", "alice")])


# ====================================================================== through the core


def auth(client, scheme="digest", cred="alice:pw"):
    return client.call(Auth(0, scheme, cred), xid=XID_AUTH)


def who_am_i(client):
    body = client.ok(WhoAmI())
    n = int.from_bytes(body[:4], "big")
    out, offset = [], 4
    for _ in range(n):
        scheme, offset = read_string(body, offset)
        user, offset = read_string(body, offset)
        out.append((scheme, user))
    assert offset == len(body)
    return out


def acl_of(client, path):
    acl, _ = GetACL.deserialize(client.ok(GetACL(path)), 0)
    return [(a.perms, a.id.scheme, a.id.id) for a in acl]


class TestCoreAuth:
    def test_auth_reply_and_who_am_i(self):
        d = CoreDriver()
        c = d.session()
        assert who_am_i(c) == [("ip", "127.0.0.1")]
        f = auth(c)
        assert (f.xid, f.err) == (XID_AUTH, 0)
        auth(c)  # the same identity is not added twice
        assert who_am_i(c) == [("ip", "127.0.0.1"), ("digest", "alice")]

    def test_unknown_scheme_fails_and_closes(self):
        d = CoreDriver()
        c = d.session()
        f = auth(c, "kerberos", "x")
        assert (f.xid, f.err) == (XID_AUTH, AuthFailedError.code)
        assert c.closed

    def test_digest_auth_disabled_fails(self):
        d = CoreDriver(CoreSettings(digest_auth_enabled=False))
        c = d.session()
        assert auth(c).err == AuthFailedError.code
        assert c.closed

    def test_auth_is_answered_before_writes_in_flight(self):
        """Apache handles auth in processPacket, outside the request pipeline."""
        d = CoreDriver(auto_persist=False)
        c = d.session()
        xc = c.send(Create("/x", b"", OPEN, 0))
        c.send(Auth(0, "digest", "alice:pw"), xid=XID_AUTH)
        assert [f.xid for f in c.take()] == [XID_AUTH]
        d.persist()
        assert [f.xid for f in c.take()] == [xc]

    def test_creator_acl_after_auth(self):
        d = CoreDriver()
        owner = d.session()
        other = d.session()
        auth(owner)
        owner.ok(Create("/mine", b"secret", [make_acl("auth", "ignored", all=True)], 0))
        assert acl_of(owner, "/mine") == [(31, *ALICE)]
        assert other.err(GetData("/mine", False)) == NoAuthError.code
        auth(other)
        assert GetData.deserialize(other.ok(GetData("/mine", False)), 0)[0] == b"secret"

    def test_kazoo_creator_all_acl(self):
        """kazoo's CREATOR_ALL_ACL is Id('auth', ''), which kazoo's write_string puts on the wire as a
        null string; Apache accepts it and expands it to the caller's digest id."""
        d = CoreDriver()
        c = d.session()
        auth(c)
        f = c.call(Create("/mine", b"", CREATOR_ALL_ACL, 0))
        assert f.err == 0
        assert acl_of(c, "/mine") == [(31, *ALICE)]

    def test_auth_acl_without_authentication_is_invalid(self):
        d = CoreDriver()
        c = d.session()
        assert c.call(Create("/x", b"", [make_acl("auth", "x", all=True)], 0)).err == InvalidACLError.code

    def test_get_acl_masks_digests_without_admin(self):
        d = CoreDriver()
        owner = d.session()
        reader = d.session()
        auth(owner)
        acl = [make_digest_acl("alice", "pw", all=True), make_acl("world", "anyone", read=True)]
        owner.ok(Create("/n", b"", acl, 0))
        assert acl_of(reader, "/n") == [(31, "digest", "alice:x"), (1, "world", "anyone")]
        assert acl_of(owner, "/n") == [(31, *ALICE), (1, "world", "anyone")]

    def test_get_acl_needs_read_or_admin(self):
        d = CoreDriver()
        c = d.session()
        c.ok(Create("/admin-only", b"", [make_acl("world", "anyone", admin=True)], 0))
        c.ok(Create("/write-only", b"", [make_acl("world", "anyone", write=True)], 0))
        assert acl_of(c, "/admin-only") == [(16, "world", "anyone")]
        assert c.err(GetACL("/write-only")) == NoAuthError.code

    def test_ip_acl(self):
        d = CoreDriver()
        inside = d.session(ip="10.1.2.3")
        outside = d.session(ip="192.168.0.1")
        inside.ok(Create("/lan", b"x", [make_acl("ip", "10.0.0.0/8", all=True)], 0))
        assert GetData.deserialize(inside.ok(GetData("/lan", False)), 0)[0] == b"x"
        assert outside.err(GetData("/lan", False)) == NoAuthError.code

    def test_super_digest(self):
        d = CoreDriver(CoreSettings(super_digest=digest_id("super:secret")))
        owner = d.session()
        admin = d.session()
        auth(owner)
        owner.ok(Create("/locked", b"v", [make_digest_acl("alice", "pw", read=True)], 0))
        assert admin.err(GetData("/locked", False)) == NoAuthError.code
        assert auth(admin, cred="super:secret").err == 0
        assert sorted(who_am_i(admin)) == sorted([("ip", "127.0.0.1"), ("super", ""), ("digest", "super")])
        assert GetData.deserialize(admin.ok(GetData("/locked", False)), 0)[0] == b"v"
        admin.ok(SetData("/locked", b"w", -1))
        admin.ok(SetACL("/locked", OPEN, -1))
        # With ADMIN through super, nothing is masked.
        assert acl_of(admin, "/locked") == [(31, "world", "anyone")]
        admin.ok(Delete("/locked", -1))

    def test_wrong_super_password_is_just_a_digest(self):
        d = CoreDriver(CoreSettings(super_digest=digest_id("super:secret")))
        c = d.session()
        assert auth(c, cred="super:guess").err == 0
        assert ("super", "") not in who_am_i(c)

    def test_skip_acl(self):
        d = CoreDriver(CoreSettings(skip_acl=True))
        owner = d.session()
        other = d.session()
        auth(owner)
        owner.ok(Create("/n", b"v", [make_digest_acl("alice", "pw", read=True)], 0))
        other.ok(GetChildren("/n", True))
        other.ok(SetData("/n", b"w", -1))
        other.ok(Create("/n/k", b"", OPEN, 0))
        assert other.events() == [(4, "/n")]  # no ACL filter on events either
        # ACLs are still validated and stored (fixupACL runs regardless of skipACL).
        assert other.call(Create("/bad", b"", [make_acl("digest", "nocolon", all=True)], 0)).err \
            == InvalidACLError.code
        assert acl_of(other, "/n") == [(1, *ALICE)]
