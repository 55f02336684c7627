//! ValueSet (placeholder)
