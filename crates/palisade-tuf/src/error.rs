//! The one error type. Every variant but `Crypto` is something an attacker (or a broken
//! repository) can cause, so none of them is a panic; each attack has its own variant.

/// Why metadata, an assignment or an image was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TufError {
    /// A signature by a key the role trusts does not verify (tampered metadata).
    #[error("{role}: a signature by a trusted key does not verify")]
    BadSignature { role: String },
    /// Fewer valid signatures by the role's keys than its threshold (unknown or missing keys).
    #[error("{role}: {got} valid signature(s) by the role's keys, {need} required")]
    Threshold { role: String, got: u32, need: u32 },
    /// The metadata expired (freeze attack).
    #[error("{role}: expired at {expires}")]
    Expired { role: String, expires: String },
    /// A version or counter lower than one already trusted or installed (rollback attack).
    #[error("{role}: version {got} is older than {have}")]
    Rollback { role: String, have: u64, got: u64 },
    /// A root version that is not exactly the next one.
    #[error("root: expected version {want}, got {got}")]
    RootVersion { want: u64, got: u64 },
    /// Metadata that does not match what the metadata above it says (mix-and-match attack).
    #[error("{role}: does not match what the trusted metadata says: {detail}")]
    MixAndMatch { role: String, detail: String },
    /// The image is built for other hardware.
    #[error("wrong hardware: this device is {want}, the image is for {got}")]
    WrongHardware { want: String, got: String },
    /// The assignment names another device.
    #[error("assignment for device {got}, this device is {want}")]
    WrongDevice { want: String, got: String },
    /// The assigned target is not in the signed targets catalogue.
    #[error("target {target} is not in the signed catalogue")]
    NotInCatalogue { target: String },
    /// The image (or the assignment) does not have the catalogue's SHA-256.
    #[error("SHA-256 does not match the signed metadata")]
    HashMismatch,
    /// The image (or the assignment) does not have the catalogue's length.
    #[error("length {got} does not match the signed length {want}")]
    LengthMismatch { want: u64, got: u64 },
    /// More bytes than allowed (endless-data attack).
    #[error("more than {limit} bytes")]
    TooLarge { limit: u64 },
    /// A role whose metadata must be trusted first (workflow order: timestamp, snapshot, targets).
    #[error("{role} metadata is not trusted yet")]
    Missing { role: String },
    /// The root names no director key, so no assignment can be trusted.
    #[error("the trusted root names no director key (x-palisade-director)")]
    NoDirector,
    /// Syntactically or structurally invalid input.
    #[error("malformed: {0}")]
    Malformed(String),
    /// The crypto library refused an operation on our own keys.
    #[error("crypto: {0}")]
    Crypto(String),
}

impl TufError {
    pub(crate) fn malformed(msg: impl Into<String>) -> Self {
        Self::Malformed(msg.into())
    }
}
