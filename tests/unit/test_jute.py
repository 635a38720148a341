"""Jute codec and records, checked against kazoo's encoders and decoders (a real client's codec)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kazoo.protocol.serialization import (
    Connect,
    Create,
    Delete,
    GetData,
    ReplyHeader,
    SetACL,
    SetData,
    Transaction,
    Watch,
    read_buffer,
    read_string,
    stat_struct,
    write_buffer,
    write_string,
)
from kazoo.protocol.states import ZnodeStat
from kazoo.security import OPEN_ACL_UNSAFE, make_acl
from tests.unit.corehelper import CreateTTL, SetWatches, SetWatches2

from zkserver.jute.codec import JuteError, Reader, Writer
from zkserver.jute.codes import Op
from zkserver.jute.records import (
    STAT,
    CheckVersionTxn,
    CloseSessionTxn,
    ConnectRequest,
    CreateRequest,
    CreateSessionTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    TxnHeader,
    encode_connect_response,
    encode_reply,
    encode_watcher_event,
    read_multi,
    read_set_acl,
    read_set_data,
    read_txn_record,
)
from zkserver.jute.records import SetWatches as SetWatchesRecord

ACL = (31, "world", "anyone")


# ====================================================================== primitives


class TestWriter:
    def test_primitives_big_endian(self):
        w = Writer().int(1).long(-2).bool(True).bool(False)
        assert w.getvalue() == b"\x00\x00\x00\x01" + b"\xff" * 7 + b"\xfe" + b"\x01\x00"

    @pytest.mark.parametrize("s", ["", "/a", "ünïcödé", "x" * 300])
    def test_ustring_matches_kazoo(self, s):
        ours = Writer().ustring(s).getvalue()
        if s:
            assert ours == write_string(s)
        else:
            assert ours == b"\x00\x00\x00\x00"  # kazoo writes "" as null; jute keeps the empty string
        assert read_string(ours, 0) == (s, len(ours))

    @pytest.mark.parametrize("b", [b"", b"\x00\xff", None])
    def test_buffer_matches_kazoo(self, b):
        assert Writer().buffer(b).getvalue() == write_buffer(b)

    def test_null_string_and_vector(self):
        assert Writer().ustring(None).getvalue() == b"\xff\xff\xff\xff"
        assert Writer().ustring_vector(None).getvalue() == b"\xff\xff\xff\xff"
        assert Writer().ustring_vector(["a", "bc"]).getvalue() == (
            b"\x00\x00\x00\x02" + write_string("a") + write_string("bc"))


class TestReader:
    def test_round_trip(self):
        data = Writer().int(-5).long(1 << 40).bool(True).buffer(b"xy").ustring("é").ustring_vector(["p", ""]).getvalue()
        r = Reader(data)
        assert (r.int(), r.long(), r.bool(), r.buffer(), r.ustring(), r.ustring_vector()) == (
            -5, 1 << 40, True, b"xy", "é", ["p", ""])
        assert r.remaining == 0

    def test_nulls(self):
        r = Reader(b"\xff\xff\xff\xff" * 3)
        assert (r.buffer(), r.ustring(), r.ustring_vector()) == (None, None, None)

    @pytest.mark.parametrize(("data", "op"), [
        (b"\x00\x00\x00", "int"),
        (b"\x00" * 7, "long"),
        (b"", "bool"),
        (b"\x00\x00\x00\x05abc", "buffer"),
        (b"\x00\x00\x00\x05abc", "ustring"),
        (b"\xff\xff\xff\xfe", "buffer"),  # -2: only -1 means null
        (b"\x80\x00\x00\x00", "ustring"),
        (b"\x00\x00\x00\x02\xc3\x28", "ustring"),  # invalid UTF-8
        (b"\x00\x00\x00\x02\xed\xa0\x80", "ustring"),  # encoded surrogate
        (b"\x00\x00\x00\x03\x00\x00\x00\x00", "ustring_vector"),  # 3 elements, 4 bytes left
        (b"\xff\xff\xff\xfe", "ustring_vector"),
    ])
    def test_malformed_input_is_a_jute_error(self, data, op):
        with pytest.raises(JuteError):
            getattr(Reader(data), op)()

    def test_length_over_the_cap(self):
        data = Writer().buffer(b"x" * 100).getvalue()
        with pytest.raises(JuteError):
            Reader(data, max_len=99).buffer()
        assert Reader(data, max_len=100).buffer() == b"x" * 100

    def test_memoryview_and_offset(self):
        data = memoryview(b"junk" + Writer().ustring("/p").getvalue())
        assert Reader(data, pos=4).ustring() == "/p"

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=64), st.lists(st.sampled_from(["int", "long", "bool", "buffer", "ustring",
                                                            "ustring_vector", "vector_count"]), max_size=8))
    def test_random_bytes_only_ever_raise_jute_error(self, data, ops):
        r = Reader(data, max_len=32)
        for op in ops:
            try:
                getattr(r, op)()
            except JuteError:
                break
            assert 0 <= r.pos <= len(data)

    @settings(max_examples=100, deadline=None)
    @given(st.lists(st.text(max_size=20)), st.binary(max_size=50), st.integers(-(2**63), 2**63 - 1))
    def test_writer_reader_round_trip(self, strings, blob, n):
        data = Writer().ustring_vector(strings).buffer(blob).long(n).getvalue()
        r = Reader(data)
        assert (r.ustring_vector(), r.buffer(), r.long()) == (strings, blob, n)


# ====================================================================== requests from kazoo


def body(request) -> bytes:
    return bytes(request.serialize())


class TestRequestsFromKazoo:
    def test_connect_request(self):
        req = ConnectRequest.read(body(Connect(0, 0x500000001, 15000, 0x77, b"p" * 16, True)))
        assert (req.protocol_version, req.last_zxid_seen, req.timeout, req.session_id, req.passwd) == (
            0, 0x500000001, 15000, 0x77, b"p" * 16)
        assert req.read_only and req.has_read_only_byte

    def test_connect_request_of_an_old_client(self):
        data = body(Connect(0, 0, 15000, 0, b"", False))[:-1]  # no readOnly byte
        req = ConnectRequest.read(data)
        assert not req.has_read_only_byte and not req.read_only

    def test_create_request(self):
        acl = [make_acl("digest", "u:h", read=True, admin=True), *OPEN_ACL_UNSAFE]
        req = CreateRequest.read(Reader(body(Create("/a/b", b"\x00data", acl, 3))))
        assert (req.path, req.data, req.flags, req.ttl) == ("/a/b", b"\x00data", 3, -1)
        assert req.acl == [(17, "digest", "u:h"), ACL]

    def test_create_ttl_request(self):
        req = CreateRequest.read(Reader(body(CreateTTL("/t", None, OPEN_ACL_UNSAFE, 5, 12345))), with_ttl=True)
        assert (req.path, req.data, req.flags, req.ttl) == ("/t", None, 5, 12345)

    def test_set_data_and_set_acl(self):
        assert read_set_data(Reader(body(SetData("/x", b"v", 7)))) == ("/x", b"v", 7)
        assert read_set_acl(Reader(body(SetACL("/x", OPEN_ACL_UNSAFE, -1)))) == ("/x", [ACL], -1)

    def test_multi(self):
        ops = read_multi(Reader(body(Transaction([
            Create("/a", b"", OPEN_ACL_UNSAFE, 0),
            Delete("/b", 2),
            SetData("/c", b"x", -1),
        ]))))
        assert [(o.op, o.path) for o in ops] == [(Op.CREATE, "/a"), (Op.DELETE, "/b"), (Op.SET_DATA, "/c")]
        assert ops[1].record == ("/b", 2)

    def test_multi_read_ops_and_unknown_op(self):
        data = body(Transaction([GetData("/g", True)]))
        (op,) = read_multi(Reader(data))
        assert (op.op, op.record) == (Op.GET_DATA, ("/g", True))
        bad = bytearray(data)
        bad[0:4] = (99).to_bytes(4, "big")
        with pytest.raises(JuteError):
            read_multi(Reader(bytes(bad)))

    def test_set_watches(self):
        sw = SetWatchesRecord.read(Reader(body(SetWatches(9, ["/d"], ["/e"], ["/c1", "/c2"]))), v2=False)
        assert (sw.relative_zxid, sw.data, sw.exist, sw.child, sw.persistent, sw.recursive) == (
            9, ["/d"], ["/e"], ["/c1", "/c2"], [], [])
        sw2 = SetWatchesRecord.read(Reader(body(SetWatches2(1, [], [], [], ["/p"], ["/r"]))), v2=True)
        assert (sw2.persistent, sw2.recursive) == (["/p"], ["/r"])


# ====================================================================== replies kazoo decodes


class TestRepliesForKazoo:
    def test_connect_response(self):
        resp, _ = Connect.deserialize(encode_connect_response(30000, 0x1234, b"s" * 16, False), 0)
        assert (resp.time_out, resp.session_id, resp.passwd, resp.read_only) == (30000, 0x1234, b"s" * 16, False)
        old = encode_connect_response(30000, 0x1234, b"s" * 16, None)
        assert len(old) == len(encode_connect_response(30000, 0x1234, b"s" * 16, True)) - 1

    def test_reply_header_and_stat(self):
        stat = (1, 2, 3, 4, 5, 6, 7, -8, 9, 10, 11)
        frame = encode_reply(42, 0x100000002, -101, STAT.pack(*stat))
        assert int.from_bytes(frame[:4], "big") == len(frame) - 4
        hdr, off = ReplyHeader.deserialize(frame[4:], 0)
        assert tuple(hdr) == (42, 0x100000002, -101)
        assert ZnodeStat._make(stat_struct.unpack_from(frame[4:], off)) == ZnodeStat(*stat)

    def test_watcher_event(self):
        frame = encode_reply(-1, 7, 0, encode_watcher_event(4, 3, "/p/q"))
        hdr, off = ReplyHeader.deserialize(frame[4:], 0)
        ev, end = Watch.deserialize(frame[4:], off)
        assert (hdr.xid, hdr.zxid, tuple(ev)) == (-1, 7, (4, 3, "/p/q"))
        assert end == len(frame) - 4

    def test_get_data_shape(self):
        stat = tuple(range(11))
        payload = Writer().buffer(b"val").raw(STAT.pack(*stat)).getvalue()
        data, st_ = GetData.deserialize(payload, 0)
        assert data == b"val" and tuple(st_) == stat
        assert read_buffer(payload, 0)[0] == b"val"


# ====================================================================== transactions


TXNS = [
    (Op.CREATE, CreateTxn(Op.CREATE, "/a", b"d", (ACL,), True, 4)),
    (Op.CREATE2, CreateTxn(Op.CREATE2, "/a", None, (ACL,), False, 1)),
    (Op.CREATE_CONTAINER, CreateTxn(Op.CREATE_CONTAINER, "/c", b"", (ACL,), False, 2)),
    (Op.CREATE_TTL, CreateTxn(Op.CREATE_TTL, "/t", b"", (ACL,), False, 3, 999)),
    (Op.DELETE, DeleteTxn("/a")),
    (Op.DELETE_CONTAINER, DeleteTxn("/c", Op.DELETE_CONTAINER)),
    (Op.SET_DATA, SetDataTxn("/a", b"x", 2)),
    (Op.SET_ACL, SetACLTxn("/a", (ACL, (1, "ip", "1.2.3.4")), 1)),
    (Op.CHECK, CheckVersionTxn("/a", 3)),
    (Op.CREATE_SESSION, CreateSessionTxn(30000)),
    (Op.CLOSE_SESSION, CloseSessionTxn(["/e1", "/e2"])),
    (Op.ERROR, ErrorTxn(-101)),
]


class TestTxns:
    @pytest.mark.parametrize(("kind", "txn"), TXNS, ids=[str(k) for k, _ in TXNS])
    def test_round_trip(self, kind, txn):
        r = Reader(txn.encode())
        assert read_txn_record(kind, r) == txn
        assert r.remaining == 0

    def test_create_layouts_follow_zookeeper_jute(self):
        # CreateTxn: path data acl ephemeral parentCVersion; CreateContainerTxn drops ephemeral;
        # CreateTTLTxn: path data acl parentCVersion ttl.
        def enc(txn):
            return txn.encode()

        head = Writer().ustring("/a").buffer(b"").int(1).int(31).ustring("world").ustring("anyone").getvalue()
        assert enc(CreateTxn(Op.CREATE, "/a", b"", (ACL,), True, 7)) == head + b"\x01" + (7).to_bytes(4, "big")
        assert enc(CreateTxn(Op.CREATE_CONTAINER, "/a", b"", (ACL,), False, 7)) == head + (7).to_bytes(4, "big")
        assert enc(CreateTxn(Op.CREATE_TTL, "/a", b"", (ACL,), False, 7, 5)) == (
            head + (7).to_bytes(4, "big") + (5).to_bytes(8, "big"))

    def test_multi_round_trip(self):
        txn = MultiTxn([TXNS[0], TXNS[6], (Op.ERROR, ErrorTxn(-2))])
        assert read_txn_record(Op.MULTI, Reader(txn.encode())) == txn

    def test_header_round_trip(self):
        hdr = TxnHeader(-0x7000000000000000, -4, 0x100000001, 1_700_000_000_000, Op.MULTI)
        assert len(hdr.encode()) == 32  # long clientId, int cxid, long zxid, long time, int type
        assert TxnHeader.read(Reader(hdr.encode())) == hdr

    def test_pre_36_close_session_has_no_body(self):
        assert read_txn_record(Op.CLOSE_SESSION, Reader(b"")) is None

    def test_unknown_txn_type(self):
        with pytest.raises(JuteError):
            read_txn_record(77, Reader(b""))
