//! Vulnerability exposure, sans I/O: what firmware is made of (SBOMs), what is known to be
//! wrong with it (advisories), and whether a component's version falls in an advisory's
//! ranges, compared the way its own ecosystem orders versions.
//!
//! Nothing here touches files, sockets, the database or the clock; the server feeds bytes in
//! and gets validated values (or a precise error) out.

pub mod advisory;
pub mod bundle;
pub mod cvss;
mod cvss4;
pub mod index;
mod json;
pub mod purl;
pub mod sbom;
pub mod version;
