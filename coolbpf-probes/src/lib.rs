//! The probe catalogue (in progress).
