//! palisade-proto
