//! The package manifest (`appipc.toml`).
