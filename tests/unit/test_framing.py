"""Client-port framing: length prefixes, jute.maxbuffer, four-letter words on the first bytes only."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zkserver.proto.framing import FOUR_LETTER_WORDS, FrameError, FrameSplitter

MAX = 0xFFFFF


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


class TestSplitting:
    def test_one_frame(self):
        s = FrameSplitter(MAX)
        assert s.feed(frame(b"hello")) == [b"hello"]
        assert s.feed(b"") == []

    def test_several_frames_in_one_read(self):
        s = FrameSplitter(MAX)
        assert s.feed(frame(b"a") + frame(b"") + frame(b"ccc")) == [b"a", b"", b"ccc"]

    def test_frame_split_byte_by_byte(self):
        s = FrameSplitter(MAX)
        data = frame(b"abcdef") + frame(b"xy")
        out = []
        for i in range(len(data)):
            out += s.feed(data[i : i + 1])
        assert out == [b"abcdef", b"xy"]

    def test_partial_tail_is_kept(self):
        s = FrameSplitter(MAX)
        data = frame(b"first") + frame(b"second")
        assert s.feed(data[:-3]) == [b"first"]
        assert s.feed(data[-3:]) == [b"second"]

    def test_max_length_is_inclusive(self):
        s = FrameSplitter(16)
        assert s.feed(frame(b"x" * 16)) == [b"x" * 16]

    @pytest.mark.parametrize("length", [17, 0x7FFFFFFF, -1, -0x80000000])
    def test_bad_length_is_an_error_before_the_body_arrives(self, length):
        s = FrameSplitter(16)
        with pytest.raises(FrameError):
            s.feed(struct.pack(">i", length))

    def test_bad_length_after_good_frames(self):
        s = FrameSplitter(16)
        with pytest.raises(FrameError):
            s.feed(frame(b"ok") + struct.pack(">i", 100))

    @settings(max_examples=100, deadline=None)
    @given(st.lists(st.binary(max_size=40), max_size=8), st.data())
    def test_any_chunking_gives_the_same_frames(self, payloads, data):
        stream = b"".join(frame(p) for p in payloads)
        cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
        s = FrameSplitter(MAX)
        out, prev = [], 0
        for cut in [*cuts, len(stream)]:
            out += s.feed(stream[prev:cut])
            prev = cut
        assert out == payloads


class TestFourLetterWords:
    def test_known_words_on_a_new_connection(self):
        for word in FOUR_LETTER_WORDS:
            assert FrameSplitter(MAX).four_letter_word(word.encode()) == word

    def test_word_split_across_reads(self):
        s = FrameSplitter(MAX)
        assert s.four_letter_word(b"ru") is None
        s.feed(b"ru")
        assert s.four_letter_word(b"ok") == "ruok"

    def test_unknown_word_is_a_length(self):
        s = FrameSplitter(MAX)
        assert s.four_letter_word(b"abcd") is None
        with pytest.raises(FrameError):
            s.feed(b"abcd")

    def test_only_the_first_bytes_count(self):
        s = FrameSplitter(MAX)
        assert s.four_letter_word(frame(b"connect")) is None
        assert s.feed(frame(b"connect")) == [b"connect"]
        assert s.four_letter_word(b"ruok") is None
        with pytest.raises(FrameError):
            s.feed(b"ruok")  # no longer a command: a length far over jute.maxbuffer

    def test_word_after_a_partial_first_frame_is_not_a_command(self):
        s = FrameSplitter(MAX)
        s.feed(struct.pack(">i", 10) + b"abc")
        assert s.four_letter_word(b"stat") is None

    def test_words_can_never_be_valid_lengths(self):
        for word in FOUR_LETTER_WORDS:
            assert struct.unpack(">i", word.encode())[0] > MAX
