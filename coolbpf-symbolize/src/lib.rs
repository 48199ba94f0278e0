//! coolbpf-symbolize: addresses to frames. Work on this crate is tracked by its own issue; it is empty for now.
