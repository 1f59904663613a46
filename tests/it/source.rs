//! Tests for source.
