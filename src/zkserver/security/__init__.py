"""Secure client connections: TLS on the secure client port, x509 and SASL authentication.

keystores.py  Apache's key/trust store files (JKS, PKCS12, PEM) with its type guessing
x509.py       a certificate subject as Java's X500Principal.getName() (RFC 2253)
tls.py        ssl.* settings -> an SSLContext; the TLS protocol wrapper of the secure port
jaas.py       the JAAS login configuration file (java.security.auth.login.config)
sasl.py       the SASL server side of opcode 102 (DIGEST-MD5, RFC 2831), and the mechanism choice
gssapi_sasl.py  SASL GSSAPI (Kerberos, RFC 4752) when the JAAS Server section uses Krb5LoginModule
"""

X509_PROVIDER = "org.apache.zookeeper.server.auth.X509AuthenticationProvider"
SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
DIGEST_PROVIDER = "org.apache.zookeeper.server.auth.DigestAuthenticationProvider"
IP_PROVIDER = "org.apache.zookeeper.server.auth.IPAuthenticationProvider"
SERVED_PROVIDERS = frozenset({X509_PROVIDER, SASL_PROVIDER, DIGEST_PROVIDER, IP_PROVIDER})
