//! Sink: Parquet batches, rejected rows, diagnostics, manifests.
