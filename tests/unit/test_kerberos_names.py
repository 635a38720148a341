"""KerberosName and auth_to_local rules as Apache's KerberosName applies them, and the identity
SaslServerCallbackHandler gives a GSSAPI client; the JAAS Server section's refusals (no KDC needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from zkserver.security import jaas
from zkserver.security.gssapi_sasl import KerberosName, KerberosSettings, NoMatchingRule, Rule, parse_rules
from zkserver.security.sasl import SaslConfigError, SaslSettings

REALM = "EXAMPLE.TEST"


def settings(**kw: object) -> KerberosSettings:
    return KerberosSettings(principal=f"zookeeper/localhost@{REALM}", keytab=None, service="zookeeper",
                            host="localhost", default_realm=REALM, **kw)  # type: ignore[arg-type]


def test_parse_names() -> None:
    assert KerberosName.parse("alice@R") == KerberosName("alice", None, "R")
    assert KerberosName.parse("zk/host.example@R") == KerberosName("zk", "host.example", "R")
    assert KerberosName.parse("simple") == KerberosName("simple", None, None)
    assert str(KerberosName.parse("zk/h@R")) == "zk/h@R"
    with pytest.raises(ValueError, match="Malformed Kerberos name"):
        KerberosName.parse("a/b/c@R")


def test_default_rule_short_names() -> None:
    rules = (Rule(),)
    assert KerberosName.parse(f"alice@{REALM}").short_name(rules, REALM) == "alice"
    assert KerberosName.parse(f"zk/h@{REALM}").short_name(rules, REALM) == "zk"
    assert KerberosName.parse("bob").short_name(rules, REALM) == "bob"
    with pytest.raises(NoMatchingRule):
        KerberosName.parse("alice@OTHER.REALM").short_name(rules, REALM)


def test_rules_with_parameters_match_and_substitution() -> None:
    rules = parse_rules("RULE:[2:$1@$0](svc@.*)s/svc@.*/service/ RULE:[1:$1](.*a.*)s/a/A/g DEFAULT")
    assert len(rules) == 3
    assert KerberosName.parse("svc/h@X").short_name(rules, REALM) == "service"
    assert KerberosName.parse("banana@X").short_name(rules, REALM) == "bAnAnA"
    assert KerberosName.parse(f"eve@{REALM}").short_name(rules, REALM) == "eve"
    # a group reference in the replacement, Java style
    (rule,) = parse_rules("RULE:[1:$1@$0](.*@X)s/(.*)@X/$1-x/")
    assert KerberosName.parse("dave@X").short_name((rule,), REALM) == "dave-x"
    with pytest.raises(NoMatchingRule, match="Non-simple name"):
        KerberosName.parse("e/h@X").short_name(parse_rules("RULE:[2:$1/$2]"), REALM)
    with pytest.raises(SaslConfigError, match="Invalid rule"):
        parse_rules("RULE:nonsense")


def test_authorize_like_the_callback_handler() -> None:
    assert settings().authorize(f"alice@{REALM}", "x") == f"alice@{REALM}"
    assert settings().authorize(f"svc/h@{REALM}", "x") == f"svc/h@{REALM}"
    assert settings(remove_realm=True).authorize(f"svc/h@{REALM}", "x") == "svc/h"
    assert settings(remove_host=True, remove_realm=True).authorize(f"svc/h@{REALM}", "x") == "svc"
    # no rule applies (another realm under DEFAULT): the client's authorization id stays
    assert settings().authorize("alice@OTHER", "alice-authz") == "alice-authz"


def server_section(tmp_path: Path, options: str) -> dict[str, str]:
    path = tmp_path / "jaas.conf"
    path.write_text("Server {\n com.sun.security.auth.module.Krb5LoginModule required\n" + options + ";\n};\n")
    assert jaas.load_jaas(str(path))["Server"][0].module == jaas.KRB5_MODULE
    return {"java.security.auth.login.config": str(path)}


@pytest.mark.parametrize(("options", "reason"), [
    ('useKeyTab=true keyTab="/nonexistent/zk.keytab" storeKey=true principal="zookeeper/h@R"', "does not exist"),
    ('useKeyTab=true keyTab="/nonexistent/zk.keytab" storeKey=true', "needs principal"),
    ('useTicketCache=true principal="zookeeper/h@R"', "keytab only"),
])
def test_server_section_refusals(tmp_path: Path, options: str, reason: str) -> None:
    pytest.importorskip("gssapi")
    with pytest.raises(SaslConfigError, match=reason):
        SaslSettings.from_properties(server_section(tmp_path, options))
