//! palisade-pki
