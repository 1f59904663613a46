//! Tests for decode.
