//! Advisory bundles: a zip of advisory files (an OSV ecosystem dump, a CSAF provider's
//! directory), unpacked from memory with every size bounded before it is trusted.
//!
//! Only `.json` entries are taken; directories, symlinks and other files are listed as skipped.
//! Sizes in the archive's headers are not trusted: each entry is read through a limit, so a zip
//! bomb ends with an error naming the entry instead of filling memory.

use std::io::{Cursor, Read};

/// Most entries a bundle may hold.
pub const MAX_ENTRIES: usize = 200_000;
/// Largest uncompressed advisory file.
pub const MAX_ENTRY_BYTES: u64 = 16 << 20;
/// Largest total of the uncompressed advisory files.
pub const MAX_TOTAL_BYTES: u64 = 1 << 30;

/// One advisory file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFile {
    /// The path inside the archive.
    pub name: String,
    pub bytes: Vec<u8>,
}

/// What a bundle held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bundle {
    pub files: Vec<BundleFile>,
    /// Entries that are not `.json` files, by path.
    pub skipped: Vec<String>,
}

/// Why a bundle cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("not a readable zip archive: {0}")]
    Zip(String),
    #[error("the archive holds more than {MAX_ENTRIES} entries")]
    TooManyEntries,
    #[error("{name}: larger than {MAX_ENTRY_BYTES} bytes uncompressed")]
    EntryTooLarge { name: String },
    #[error("the archive's files exceed {MAX_TOTAL_BYTES} bytes uncompressed")]
    TooLarge,
    #[error("{name}: {problem}")]
    Entry { name: String, problem: String },
}

/// True when `bytes` start like a zip archive (a local file header or an empty archive's end).
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

/// Unpacks the `.json` files of a zip archive, in archive order.
pub fn unpack(bytes: &[u8]) -> Result<Bundle, BundleError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| BundleError::Zip(e.to_string()))?;
    if archive.len() > MAX_ENTRIES {
        return Err(BundleError::TooManyEntries);
    }
    let mut bundle = Bundle::default();
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| BundleError::Zip(format!("entry {i}: {e}")))?;
        let name = entry.name().map_or_else(|_| format!("entry {i}"), |n| n.into_owned());
        if !entry.is_file() || !name.to_ascii_lowercase().ends_with(".json") {
            if !entry.is_dir() {
                bundle.skipped.push(name);
            }
            continue;
        }
        if entry.size() > MAX_ENTRY_BYTES {
            return Err(BundleError::EntryTooLarge { name });
        }
        let mut data = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0).min(1 << 20));
        let read = (&mut entry)
            .take(MAX_ENTRY_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(|e| BundleError::Entry { name: name.clone(), problem: e.to_string() })?;
        if read as u64 > MAX_ENTRY_BYTES {
            return Err(BundleError::EntryTooLarge { name });
        }
        total += read as u64;
        if total > MAX_TOTAL_BYTES {
            return Err(BundleError::TooLarge);
        }
        bundle.files.push(BundleFile { name, bytes: data });
    }
    Ok(bundle)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        {
            let mut writer = zip::ZipWriter::new(&mut out);
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .large_file(false);
            for (name, bytes) in entries {
                if name.ends_with('/') {
                    writer.add_directory(*name, options).ok();
                } else {
                    writer.start_file(*name, options).ok();
                    writer.write_all(bytes).ok();
                }
            }
            writer.finish().ok();
        }
        out.into_inner()
    }

    #[test]
    fn takes_json_entries_and_lists_the_rest() {
        let bytes = zip_of(&[("osv/", b""), ("osv/GO-1.json", b"{\"id\":\"GO-1\"}"), ("README.md", b"hi")]);
        assert!(is_zip(&bytes));
        let bundle = unpack(&bytes).ok().unwrap_or_default();
        assert_eq!(bundle.files.len(), 1);
        assert_eq!(bundle.files.first().map(|f| f.name.as_str()), Some("osv/GO-1.json"));
        assert_eq!(bundle.files.first().map(|f| f.bytes.as_slice()), Some(&b"{\"id\":\"GO-1\"}"[..]));
        assert_eq!(bundle.skipped, vec!["README.md".to_owned()]);
    }

    #[test]
    fn a_bomb_is_refused_by_name() {
        let big = vec![b' '; (MAX_ENTRY_BYTES + 10) as usize];
        let bytes = zip_of(&[("bomb.json", &big)]);
        assert!(bytes.len() < 1 << 20, "deflate squeezes spaces");
        assert_eq!(unpack(&bytes), Err(BundleError::EntryTooLarge { name: "bomb.json".into() }));
    }

    #[test]
    fn garbage_is_a_zip_error() {
        assert!(matches!(unpack(b"PK\x03\x04garbage"), Err(BundleError::Zip(_))));
        assert!(!is_zip(b"{\"id\":1}"));
    }
}
