//! Reading SBOMs: CycloneDX JSON 1.2–1.6 and SPDX 2.2/2.3 JSON into one flat, deduplicated list
//! of components (purl, CPEs, name, version) plus the dependency edges between them.
//!
//! The reader is one linear pass over the parsed document with hash maps for deduplication and
//! reference resolution; nesting and counts are capped so hostile input cannot blow up.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::json::{self, FieldError, Obj};
use crate::purl::Purl;
use crate::version::Ecosystem;

/// At most this many components (nested ones included) in one SBOM.
pub const MAX_COMPONENTS: usize = 100_000;
/// Components nested deeper than this are refused.
pub const MAX_NESTING: usize = 32;
/// At most this many dependency edges in one SBOM.
pub const MAX_DEPENDENCIES: usize = 1_000_000;

const CYCLONEDX_VERSIONS: [&str; 5] = ["1.2", "1.3", "1.4", "1.5", "1.6"];
const SPDX_VERSIONS: [&str; 2] = ["SPDX-2.2", "SPDX-2.3"];

/// What a firmware image is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sbom {
    /// The format and its version, e.g. `CycloneDX 1.5` or `SPDX 2.3`.
    pub format: String,
    /// The thing the SBOM describes (CycloneDX `metadata.component`, the SPDX package the document
    /// `DESCRIBES`), when there is exactly one. It is not repeated in `components`.
    pub subject: Option<Component>,
    /// Every component, nested ones flattened, deduplicated by purl (or group, name and version).
    pub components: Vec<Component>,
    /// `(from, to)`: `from` depends on (or contains) `to`, both as [`Component::id`] values.
    /// References to elements the document does not define are kept as written.
    pub dependencies: Vec<(String, String)>,
}

/// One software component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// The document-local reference (CycloneDX `bom-ref`, SPDX `SPDXID`), used by `dependencies`.
    pub id: Option<String>,
    /// The package URL in canonical form (see [`Purl`]'s `Display`).
    pub purl: Option<String>,
    pub cpes: Vec<String>,
    /// CycloneDX `group` (Maven group id, npm scope, …), when given.
    pub group: Option<String>,
    pub name: String,
    pub version: Option<String>,
    /// Which version order applies, from the purl type; `None` without a purl.
    pub ecosystem: Option<Ecosystem>,
}

/// Why an SBOM is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SbomError {
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    InvalidJson { line: usize, column: usize, message: String },
    #[error("not CycloneDX or SPDX JSON: {0}")]
    UnknownFormat(String),
    #[error("specVersion {0:?} is not supported (1.2–1.6)")]
    UnsupportedCycloneDx(String),
    #[error("spdxVersion {0:?} is not supported (SPDX-2.2, SPDX-2.3)")]
    UnsupportedSpdx(String),
    #[error("{path}: {problem}")]
    Invalid { path: String, problem: String },
    #[error("{path}: components nested deeper than {MAX_NESTING}")]
    TooDeep { path: String },
    #[error("more than {MAX_COMPONENTS} components")]
    TooManyComponents,
    #[error("more than {MAX_DEPENDENCIES} dependency edges")]
    TooManyDependencies,
}

impl From<FieldError> for SbomError {
    fn from(error: FieldError) -> Self {
        Self::Invalid { path: error.path, problem: error.problem }
    }
}

impl From<json::SyntaxError> for SbomError {
    fn from(error: json::SyntaxError) -> Self {
        Self::InvalidJson { line: error.line, column: error.column, message: error.message }
    }
}

/// Parses a CycloneDX or SPDX JSON document, detecting which it is.
pub fn parse_sbom(bytes: &[u8]) -> Result<Sbom, SbomError> {
    let root = json::parse(bytes)?;
    let Value::Object(_) = root else {
        return Err(SbomError::UnknownFormat("the document is not a JSON object".into()));
    };
    let doc = Obj::of(&root, "")?;
    if doc.get("bomFormat").is_some() {
        parse_cyclonedx(doc)
    } else if doc.get("spdxVersion").is_some() {
        parse_spdx(doc)
    } else {
        Err(SbomError::UnknownFormat("no bomFormat or spdxVersion".into()))
    }
}

/// Checks `bomFormat` and `specVersion` and returns the supported spec version.
fn cyclonedx_version<'a>(doc: Obj<'a, '_>) -> Result<&'a str, SbomError> {
    let format = doc.req_str("bomFormat")?;
    if format != "CycloneDX" {
        return Err(SbomError::UnknownFormat(format!("bomFormat is {format:?}, not \"CycloneDX\"")));
    }
    let version = doc.req_str("specVersion")?;
    if CYCLONEDX_VERSIONS.contains(&version) {
        Ok(version)
    } else {
        Err(SbomError::UnsupportedCycloneDx(version.to_owned()))
    }
}

fn parse_cyclonedx(doc: Obj<'_, '_>) -> Result<Sbom, SbomError> {
    let version = cyclonedx_version(doc)?;
    let mut builder = Builder::default();

    let mut subject = None;
    if let Some(metadata) = doc.get("metadata") {
        let metadata_path = doc.path_of("metadata");
        let metadata = Obj::of(metadata, &metadata_path)?;
        if let Some(component) = metadata.get("component") {
            let path = metadata.path_of("component");
            let obj = Obj::of(component, &path)?;
            let parsed = cyclonedx_component(obj)?;
            if let Some(id) = &parsed.id {
                builder.refs.insert(id.clone(), id.clone());
            }
            subject = Some(parsed);
            builder.cyclonedx_components(obj, 1)?;
        }
    }
    builder.cyclonedx_component_list(doc, 1)?;

    let dependencies_path = doc.path_of("dependencies");
    for (position, entry) in doc.opt_array("dependencies")?.iter().enumerate() {
        let path = json::index(&dependencies_path, position);
        let entry = Obj::of(entry, &path)?;
        let from = entry.req_str("ref")?;
        for to in entry.str_array("dependsOn")? {
            builder.edge(from, to)?;
        }
    }
    Ok(builder.finish(format!("CycloneDX {version}"), subject))
}

/// One CycloneDX component object, without its children.
fn cyclonedx_component(obj: Obj<'_, '_>) -> Result<Component, SbomError> {
    let purl = checked_purl(obj, "purl")?;
    let mut cpes = Vec::new();
    if let Some(cpe) = obj.opt_text("cpe")? {
        if !json::is_cpe(cpe) {
            return Err(FieldError::new(obj.path_of("cpe"), format!("{cpe:?} is not a CPE")).into());
        }
        cpes.push(cpe.to_owned());
    }
    let name = component_name(obj, "name", purl.as_ref())?;
    Ok(Component {
        id: obj.opt_text("bom-ref")?.map(str::to_owned),
        ecosystem: purl.as_ref().map(Purl::ecosystem),
        purl: purl.as_ref().map(Purl::to_string),
        cpes,
        group: obj.opt_text("group")?.map(str::to_owned),
        name,
        version: obj.opt_text("version")?.map(str::to_owned),
    })
}

fn checked_purl(obj: Obj<'_, '_>, key: &str) -> Result<Option<Purl>, SbomError> {
    match obj.opt_text(key)? {
        None => Ok(None),
        Some(purl) => Ok(Some(json::purl(&obj.path_of(key), purl)?)),
    }
}

/// The component's name, or the name part of its purl when the name is missing.
fn component_name(obj: Obj<'_, '_>, key: &str, purl: Option<&Purl>) -> Result<String, SbomError> {
    match (obj.opt_text(key)?, purl) {
        (Some(name), _) => Ok(name.to_owned()),
        (None, Some(purl)) => Ok(purl.name.clone()),
        (None, None) => Err(FieldError::new(obj.path_of(key), "missing, and no purl to take it from").into()),
    }
}

fn parse_spdx(doc: Obj<'_, '_>) -> Result<Sbom, SbomError> {
    let version = doc.req_str("spdxVersion")?;
    if !SPDX_VERSIONS.contains(&version) {
        return Err(SbomError::UnsupportedSpdx(version.to_owned()));
    }
    let document_id = doc.opt_text("SPDXID")?.unwrap_or("SPDXRef-DOCUMENT");
    let mut builder = Builder::default();

    let packages_path = doc.path_of("packages");
    for (position, package) in doc.opt_array("packages")?.iter().enumerate() {
        let path = json::index(&packages_path, position);
        let package = Obj::of(package, &path)?;
        builder.add(spdx_package(package)?)?;
    }

    let mut described: Vec<&str> = doc.str_array("documentDescribes")?;
    let relationships_path = doc.path_of("relationships");
    for (position, relationship) in doc.opt_array("relationships")?.iter().enumerate() {
        let path = json::index(&relationships_path, position);
        let relationship = Obj::of(relationship, &path)?;
        let element = relationship.req_str("spdxElementId")?;
        let kind = relationship.req_str("relationshipType")?;
        let related = relationship.req_str("relatedSpdxElement")?;
        match kind {
            "DEPENDS_ON" | "CONTAINS" | "STATIC_LINK" | "DYNAMIC_LINK" => builder.edge(element, related)?,
            "DEPENDENCY_OF" | "CONTAINED_BY" => builder.edge(related, element)?,
            "DESCRIBES" if element == document_id => described.push(related),
            "DESCRIBED_BY" if related == document_id => described.push(element),
            _ => {}
        }
    }
    described.sort_unstable();
    described.dedup();
    let subject = match described.as_slice() {
        [only] => builder.take(only),
        _ => None,
    };
    Ok(builder.finish(format!("SPDX {}", version.trim_start_matches("SPDX-")), subject))
}

fn spdx_package(package: Obj<'_, '_>) -> Result<Component, SbomError> {
    let mut purl = None;
    let mut cpes = Vec::new();
    let refs_path = package.path_of("externalRefs");
    for (position, reference) in package.opt_array("externalRefs")?.iter().enumerate() {
        let path = json::index(&refs_path, position);
        let reference = Obj::of(reference, &path)?;
        let kind = reference.req_str("referenceType")?;
        let locator = reference.req_str("referenceLocator")?.trim();
        match kind {
            "purl" if purl.is_none() => purl = Some(json::purl(&reference.path_of("referenceLocator"), locator)?),
            "cpe23Type" | "cpe22Type" => {
                if !json::is_cpe(locator) {
                    let problem = format!("{locator:?} is not a CPE");
                    return Err(FieldError::new(reference.path_of("referenceLocator"), problem).into());
                }
                if !cpes.iter().any(|known| known == locator) {
                    cpes.push(locator.to_owned());
                }
            }
            _ => {}
        }
    }
    let version = package.opt_text("versionInfo")?.filter(|version| !is_no_assertion(version));
    Ok(Component {
        id: package.opt_text("SPDXID")?.map(str::to_owned),
        name: component_name(package, "name", purl.as_ref())?,
        ecosystem: purl.as_ref().map(Purl::ecosystem),
        purl: purl.as_ref().map(Purl::to_string),
        cpes,
        group: None,
        version: version.map(str::to_owned),
    })
}

fn is_no_assertion(value: &str) -> bool {
    value == "NOASSERTION" || value == "NONE"
}

/// Collects components with deduplication and reference aliasing, and edges.
#[derive(Debug, Default)]
struct Builder {
    components: Vec<Component>,
    /// Dedup key → index in `components`.
    by_key: HashMap<String, usize>,
    /// Any reference seen (bom-ref, SPDXID) → the id of the component that now stands for it.
    refs: HashMap<String, String>,
    seen: usize,
    edges: Vec<(String, String)>,
}

impl Builder {
    fn cyclonedx_component_list(&mut self, parent: Obj<'_, '_>, depth: usize) -> Result<(), SbomError> {
        let list_path = parent.path_of("components");
        let list = parent.opt_array("components")?;
        if !list.is_empty() && depth > MAX_NESTING {
            return Err(SbomError::TooDeep { path: list_path });
        }
        for (position, item) in list.iter().enumerate() {
            let path = json::index(&list_path, position);
            let obj = Obj::of(item, &path)?;
            self.add(cyclonedx_component(obj)?)?;
            self.cyclonedx_components(obj, depth + 1)?;
        }
        Ok(())
    }

    /// The children of a component.
    fn cyclonedx_components(&mut self, component: Obj<'_, '_>, depth: usize) -> Result<(), SbomError> {
        self.cyclonedx_component_list(component, depth)
    }

    fn add(&mut self, component: Component) -> Result<(), SbomError> {
        self.seen += 1;
        if self.seen > MAX_COMPONENTS {
            return Err(SbomError::TooManyComponents);
        }
        let key = match &component.purl {
            Some(purl) => format!("purl\0{purl}"),
            None => format!(
                "name\0{}\0{}\0{}",
                component.group.as_deref().unwrap_or_default(),
                component.name,
                component.version.as_deref().unwrap_or_default()
            ),
        };
        match self.by_key.get(&key).and_then(|&at| self.components.get_mut(at)) {
            Some(kept) => {
                if kept.id.is_none() {
                    kept.id.clone_from(&component.id);
                }
                for cpe in component.cpes {
                    if !kept.cpes.contains(&cpe) {
                        kept.cpes.push(cpe);
                    }
                }
                if let (Some(alias), Some(id)) = (component.id, &kept.id) {
                    self.refs.insert(alias, id.clone());
                }
            }
            None => {
                if let Some(id) = &component.id {
                    self.refs.insert(id.clone(), id.clone());
                }
                self.by_key.insert(key, self.components.len());
                self.components.push(component);
            }
        }
        Ok(())
    }

    fn edge(&mut self, from: &str, to: &str) -> Result<(), SbomError> {
        if self.edges.len() >= MAX_DEPENDENCIES {
            return Err(SbomError::TooManyDependencies);
        }
        self.edges.push((from.to_owned(), to.to_owned()));
        Ok(())
    }

    /// Removes and returns the component whose id is `id` (after aliasing).
    fn take(&mut self, id: &str) -> Option<Component> {
        let id = self.refs.get(id)?;
        let at = self.components.iter().position(|component| component.id.as_ref() == Some(id))?;
        Some(self.components.remove(at))
    }

    fn finish(self, format: String, subject: Option<Component>) -> Sbom {
        let resolve = |reference: String| self.refs.get(&reference).cloned().unwrap_or(reference);
        let mut seen = HashSet::new();
        let mut dependencies = Vec::new();
        for (from, to) in self.edges {
            let edge = (resolve(from), resolve(to));
            if edge.0 != edge.1 && seen.insert(edge.clone()) {
                dependencies.push(edge);
            }
        }
        Sbom { format, subject, components: self.components, dependencies }
    }
}
