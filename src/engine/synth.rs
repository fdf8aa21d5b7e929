//! Synthetic models (filled in below).
