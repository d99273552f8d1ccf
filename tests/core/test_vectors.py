import numpy as np
import pytest

from dogsearch.core.vectors import decode_f32, encode_f32


def test_float32_vectors_survive_the_round_trip_bit_for_bit():
    v = np.random.default_rng(0).standard_normal(1280).astype(np.float32)
    text = encode_f32(v)
    assert len(text) == 6828  # base64 of 5,120 bytes
    assert np.array_equal(decode_f32(text), v)
    assert np.array_equal(decode_f32(encode_f32(v.astype(np.float64))), v)  # sent as float32 whatever it was


@pytest.mark.parametrize("text", ["not base64!", "AAAAAAAA", "AAA"], ids=["alphabet", "6 bytes", "padding"])
def test_bad_text_is_a_value_error(text):
    with pytest.raises(ValueError):
        decode_f32(text)
