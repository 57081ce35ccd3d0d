//! Benchmarks live in `benches/` (criterion). `rwxfs bench`, the end-to-end benchmark over
//! real mounts, is not built yet.
