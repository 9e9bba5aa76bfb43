//! Reading advisories: OSV JSON, CycloneDX VEX and CSAF 2.0 (VEX and security advisories) into one
//! normalised [`AdvisoryDoc`] per vulnerability: affected version ranges (OSV) and per-product
//! VEX statements (CycloneDX, CSAF), with the aliases that tie CVE, GHSA and GO- ids together.

use std::collections::HashMap;

use serde_json::Value;

use crate::json::{self, FieldError, Obj};

/// At most this many advisories in one document.
pub const MAX_ADVISORIES: usize = 100_000;
/// CycloneDX components and CSAF product-tree branches nested deeper than this are refused.
pub const MAX_NESTING: usize = 32;

/// Which kind of document an advisory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdvisoryFormat {
    Osv,
    CycloneDxVex,
    Csaf,
}

/// One vulnerability, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvisoryDoc {
    pub format: AdvisoryFormat,
    pub id: String,
    pub aliases: Vec<String>,
    pub summary: Option<String>,
    /// CVSS vectors as given (`CVSS:3.1/AV:N/…`, or a bare v2 vector); score them with
    /// [`crate::cvss::score`].
    pub cvss: Vec<String>,
    /// Affected packages and version ranges (OSV).
    pub affected: Vec<Affected>,
    /// Per-product statements (CycloneDX VEX, CSAF).
    pub statements: Vec<VexStatement>,
    pub withdrawn: bool,
    pub published: Option<String>,
    pub modified: Option<String>,
    /// The document a statement comes from, when its format names one (CSAF
    /// `document.tracking.id`, CycloneDX `serialNumber`): two vendors' VEX about one CVE are two
    /// documents, a re-issue of one replaces it.
    pub document: Option<String>,
}

/// One affected package of an OSV advisory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affected {
    /// The OSV ecosystem as written (`Go`, `Maven`, `PyPI`, `Debian:12`, …); unknown ones are kept.
    /// Empty when the entry has no `package` (a GIT-only entry).
    pub ecosystem: String,
    pub name: String,
    /// The package URL in canonical form.
    pub purl: Option<String>,
    pub ranges: Vec<Range>,
    /// Explicitly listed affected versions.
    pub versions: Vec<String>,
}

/// A version range: the events in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub kind: RangeKind,
    /// The repository of a GIT range.
    pub repo: Option<String>,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeKind {
    Semver,
    Ecosystem,
    Git,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Introduced(String),
    Fixed(String),
    LastAffected(String),
    Limit(String),
}

/// What a VEX document says about one product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VexStatement {
    /// A purl or CPE when the document gives one; otherwise the document's own product id.
    pub product: String,
    pub status: VexStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VexStatus {
    NotAffected { justification: Option<String> },
    Affected,
    Fixed,
    UnderInvestigation,
}

/// Why an advisory document is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdvisoryError {
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    InvalidJson { line: usize, column: usize, message: String },
    #[error("not OSV, CycloneDX VEX or CSAF JSON: {0}")]
    UnknownFormat(String),
    #[error("specVersion {0:?} is not supported (1.2–1.6)")]
    UnsupportedCycloneDx(String),
    #[error("csaf_version {0:?} is not supported (2.0)")]
    UnsupportedCsaf(String),
    #[error("{path}: {problem}")]
    Invalid { path: String, problem: String },
    #[error("{path}: nested deeper than {MAX_NESTING}")]
    TooDeep { path: String },
    #[error("more than {MAX_ADVISORIES} advisories")]
    TooMany,
}

impl From<FieldError> for AdvisoryError {
    fn from(error: FieldError) -> Self {
        Self::Invalid { path: error.path, problem: error.problem }
    }
}

impl From<json::SyntaxError> for AdvisoryError {
    fn from(error: json::SyntaxError) -> Self {
        Self::InvalidJson { line: error.line, column: error.column, message: error.message }
    }
}

fn invalid(path: impl Into<String>, problem: impl Into<String>) -> AdvisoryError {
    AdvisoryError::Invalid { path: path.into(), problem: problem.into() }
}

/// Parses an OSV entry (or an array of them, or an OSV API `{"vulns": […]}` answer), a CycloneDX
/// VEX BOM, or a CSAF 2.0 document, detecting which it is.
pub fn parse_advisory(bytes: &[u8]) -> Result<Vec<AdvisoryDoc>, AdvisoryError> {
    let root = json::parse(bytes)?;
    match &root {
        Value::Array(items) => osv_list(items, ""),
        Value::Object(map) => {
            let doc = Obj::of(&root, "")?;
            if map.contains_key("bomFormat") {
                cyclonedx_vex(doc)
            } else if map.contains_key("document") {
                csaf(doc)
            } else if map.contains_key("id") {
                Ok(vec![osv(doc)?])
            } else if let Some(Value::Array(items)) = map.get("vulns") {
                osv_list(items, "vulns")
            } else {
                Err(AdvisoryError::UnknownFormat("no id (OSV), bomFormat (CycloneDX) or document (CSAF)".into()))
            }
        }
        _ => Err(AdvisoryError::UnknownFormat("the document is not a JSON object or array".into())),
    }
}

/// The vulnerability's id and aliases as one sorted set, with `CVE-` and `GHSA-` prefixes
/// upper-cased (and the GHSA body lower-cased, its canonical form), so that the same
/// vulnerability seen under CVE, GHSA or GO- ids resolves to one.
pub fn alias_set(doc: &AdvisoryDoc) -> Vec<String> {
    let mut set: Vec<String> = std::iter::once(&doc.id).chain(&doc.aliases).map(|id| normalise_id(id)).collect();
    set.sort_unstable();
    set.dedup();
    set
}

fn normalise_id(id: &str) -> String {
    let id = id.trim();
    let prefix = |prefix: &str| id.get(..prefix.len()).filter(|head| head.eq_ignore_ascii_case(prefix)).is_some();
    if prefix("cve-") {
        id.to_ascii_uppercase()
    } else if prefix("ghsa-") {
        format!("GHSA-{}", id.get(5..).unwrap_or_default().to_ascii_lowercase())
    } else {
        id.to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// OSV

fn osv_list(items: &[Value], base: &str) -> Result<Vec<AdvisoryDoc>, AdvisoryError> {
    if items.len() > MAX_ADVISORIES {
        return Err(AdvisoryError::TooMany);
    }
    let mut out = Vec::with_capacity(items.len());
    for (position, item) in items.iter().enumerate() {
        let path = json::index(base, position);
        out.push(osv(Obj::of(item, &path)?)?);
    }
    Ok(out)
}

fn osv(entry: Obj<'_, '_>) -> Result<AdvisoryDoc, AdvisoryError> {
    let id = entry.req_str("id")?.trim();
    if id.is_empty() {
        return Err(invalid(entry.path_of("id"), "empty"));
    }
    let mut cvss = osv_severity(entry)?;
    let mut affected = Vec::new();
    let affected_path = entry.path_of("affected");
    for (position, item) in entry.opt_array("affected")?.iter().enumerate() {
        let path = json::index(&affected_path, position);
        let item = Obj::of(item, &path)?;
        for vector in osv_severity(item)? {
            if !cvss.contains(&vector) {
                cvss.push(vector);
            }
        }
        affected.push(osv_affected(item)?);
    }
    Ok(AdvisoryDoc {
        format: AdvisoryFormat::Osv,
        id: id.to_owned(),
        aliases: entry.str_array("aliases")?.into_iter().map(str::to_owned).collect(),
        summary: match entry.opt_text("summary")? {
            Some(summary) => Some(summary.to_owned()),
            None => entry.opt_text("details")?.map(str::to_owned),
        },
        cvss,
        affected,
        statements: Vec::new(),
        withdrawn: entry.opt_text("withdrawn")?.is_some(),
        published: entry.opt_text("published")?.map(str::to_owned),
        modified: entry.opt_text("modified")?.map(str::to_owned),
        document: None,
    })
}

/// CVSS vectors from an OSV `severity` list; other severity types are skipped.
fn osv_severity(obj: Obj<'_, '_>) -> Result<Vec<String>, AdvisoryError> {
    let mut vectors = Vec::new();
    let severity_path = obj.path_of("severity");
    for (position, item) in obj.opt_array("severity")?.iter().enumerate() {
        let path = json::index(&severity_path, position);
        let item = Obj::of(item, &path)?;
        let kind = item.req_str("type")?;
        let score = item.req_str("score")?.trim();
        if matches!(kind, "CVSS_V2" | "CVSS_V3" | "CVSS_V4") {
            vectors.push(score.to_owned());
        }
    }
    Ok(vectors)
}

fn osv_affected(item: Obj<'_, '_>) -> Result<Affected, AdvisoryError> {
    let (ecosystem, name, purl) = match item.get("package") {
        None => (String::new(), String::new(), None),
        Some(package) => {
            let path = item.path_of("package");
            let package = Obj::of(package, &path)?;
            let purl = package.opt_text("purl")?;
            let canonical = match purl {
                Some(purl) => Some(json::purl(&package.path_of("purl"), purl)?.to_string()),
                None => None,
            };
            let (ecosystem, name) = match purl {
                Some(_) => {
                    (package.opt_text("ecosystem")?.unwrap_or_default(), package.opt_text("name")?.unwrap_or_default())
                }
                None => (package.req_str("ecosystem")?, package.req_str("name")?),
            };
            (ecosystem.to_owned(), name.to_owned(), canonical)
        }
    };
    let mut ranges = Vec::new();
    let ranges_path = item.path_of("ranges");
    for (position, range) in item.opt_array("ranges")?.iter().enumerate() {
        let path = json::index(&ranges_path, position);
        ranges.push(osv_range(Obj::of(range, &path)?)?);
    }
    let versions = item.str_array("versions")?.into_iter().map(str::to_owned).collect();
    Ok(Affected { ecosystem, name, purl, ranges, versions })
}

fn osv_range(range: Obj<'_, '_>) -> Result<Range, AdvisoryError> {
    let kind = match range.req_str("type")? {
        "SEMVER" => RangeKind::Semver,
        "ECOSYSTEM" => RangeKind::Ecosystem,
        "GIT" => RangeKind::Git,
        other => return Err(invalid(range.path_of("type"), format!("{other:?} is not SEMVER, ECOSYSTEM or GIT"))),
    };
    let mut events = Vec::new();
    let events_path = range.path_of("events");
    for (position, event) in range.opt_array("events")?.iter().enumerate() {
        let path = json::index(&events_path, position);
        let event = Obj::of(event, &path)?;
        let mut found = None;
        for (key, make) in [
            ("introduced", Event::Introduced as fn(String) -> Event),
            ("fixed", Event::Fixed),
            ("last_affected", Event::LastAffected),
            ("limit", Event::Limit),
        ] {
            if let Some(value) = event.opt_str(key)? {
                if found.is_some() {
                    return Err(invalid(path, "more than one of introduced, fixed, last_affected, limit"));
                }
                found = Some(make(value.trim().to_owned()));
            }
        }
        match found {
            Some(event) => events.push(event),
            None => return Err(invalid(path, "none of introduced, fixed, last_affected, limit")),
        }
    }
    if events.is_empty() {
        return Err(invalid(events_path, "no events"));
    }
    Ok(Range { kind, repo: range.opt_text("repo")?.map(str::to_owned), events })
}

// ---------------------------------------------------------------------------------------------
// CycloneDX VEX

fn cyclonedx_vex(doc: Obj<'_, '_>) -> Result<Vec<AdvisoryDoc>, AdvisoryError> {
    let format = doc.req_str("bomFormat")?;
    if format != "CycloneDX" {
        return Err(AdvisoryError::UnknownFormat(format!("bomFormat is {format:?}, not \"CycloneDX\"")));
    }
    let version = doc.req_str("specVersion")?;
    if !["1.2", "1.3", "1.4", "1.5", "1.6"].contains(&version) {
        return Err(AdvisoryError::UnsupportedCycloneDx(version.to_owned()));
    }
    // bom-ref → purl (or CPE) of the components the VEX ships with.
    let mut refs = HashMap::new();
    if let Some(metadata) = doc.get("metadata") {
        let metadata_path = doc.path_of("metadata");
        let metadata = Obj::of(metadata, &metadata_path)?;
        if let Some(component) = metadata.get("component") {
            let path = metadata.path_of("component");
            collect_refs(Obj::of(component, &path)?, &mut refs, 0)?;
        }
    }
    let components_path = doc.path_of("components");
    for (position, component) in doc.opt_array("components")?.iter().enumerate() {
        let path = json::index(&components_path, position);
        collect_refs(Obj::of(component, &path)?, &mut refs, 1)?;
    }

    let list = doc.opt_array("vulnerabilities")?;
    if list.len() > MAX_ADVISORIES {
        return Err(AdvisoryError::TooMany);
    }
    let list_path = doc.path_of("vulnerabilities");
    let mut out = Vec::with_capacity(list.len());
    let serial = doc.opt_text("serialNumber")?.map(str::to_owned);
    for (position, item) in list.iter().enumerate() {
        let path = json::index(&list_path, position);
        let mut advisory = cyclonedx_vulnerability(Obj::of(item, &path)?, &refs)?;
        advisory.document.clone_from(&serial);
        out.push(advisory);
    }
    Ok(out)
}

fn collect_refs(component: Obj<'_, '_>, refs: &mut HashMap<String, String>, depth: usize) -> Result<(), AdvisoryError> {
    if depth > MAX_NESTING {
        return Err(AdvisoryError::TooDeep { path: component.path.to_owned() });
    }
    if let Some(bom_ref) = component.opt_text("bom-ref")?
        && let Some(identifier) = component.opt_text("purl")?.or(component.opt_text("cpe")?)
    {
        refs.insert(bom_ref.to_owned(), identifier.to_owned());
    }
    let children_path = component.path_of("components");
    for (position, child) in component.opt_array("components")?.iter().enumerate() {
        let path = json::index(&children_path, position);
        collect_refs(Obj::of(child, &path)?, refs, depth + 1)?;
    }
    Ok(())
}

fn cyclonedx_vulnerability(item: Obj<'_, '_>, refs: &HashMap<String, String>) -> Result<AdvisoryDoc, AdvisoryError> {
    let id = item.req_str("id")?.trim();
    if id.is_empty() {
        return Err(invalid(item.path_of("id"), "empty"));
    }
    let mut aliases = Vec::new();
    let references_path = item.path_of("references");
    for (position, reference) in item.opt_array("references")?.iter().enumerate() {
        let path = json::index(&references_path, position);
        if let Some(alias) = Obj::of(reference, &path)?.opt_text("id")? {
            aliases.push(alias.to_owned());
        }
    }

    let mut cvss = Vec::new();
    let ratings_path = item.path_of("ratings");
    for (position, rating) in item.opt_array("ratings")?.iter().enumerate() {
        let path = json::index(&ratings_path, position);
        let rating = Obj::of(rating, &path)?;
        if let Some(vector) = rating.opt_text("vector")?
            && let Some(vector) = cyclonedx_vector(rating.opt_text("method")?, vector)
            && !cvss.contains(&vector)
        {
            cvss.push(vector);
        }
    }

    let status = match item.get("analysis") {
        None => VexStatus::Affected,
        Some(analysis) => {
            let path = item.path_of("analysis");
            let analysis = Obj::of(analysis, &path)?;
            let justification = analysis.opt_text("justification")?.map(str::to_owned);
            match analysis.opt_text("state")? {
                None | Some("exploitable") => VexStatus::Affected,
                Some("not_affected") => VexStatus::NotAffected { justification },
                Some("false_positive") => {
                    VexStatus::NotAffected { justification: justification.or_else(|| Some("false_positive".into())) }
                }
                Some("resolved" | "resolved_with_pedigree") => VexStatus::Fixed,
                Some("in_triage") => VexStatus::UnderInvestigation,
                Some(other) => return Err(invalid(analysis.path_of("state"), format!("unknown state {other:?}"))),
            }
        }
    };

    let mut statements = Vec::new();
    let affects_path = item.path_of("affects");
    for (position, target) in item.opt_array("affects")?.iter().enumerate() {
        let path = json::index(&affects_path, position);
        let target = Obj::of(target, &path)?;
        let reference = target.req_str("ref")?.trim();
        // A BOM-Link (`urn:cdx:<serial>/<version>#<bom-ref>`) names a component by its bom-ref.
        let local = reference
            .rsplit_once('#')
            .filter(|_| reference.starts_with("urn:cdx:"))
            .map_or(reference, |(_, tail)| tail);
        let product = refs.get(local).cloned().unwrap_or_else(|| local.to_owned());
        statements.push(VexStatement { product, status: status.clone() });
    }

    Ok(AdvisoryDoc {
        format: AdvisoryFormat::CycloneDxVex,
        id: id.to_owned(),
        aliases,
        summary: match item.opt_text("description")? {
            Some(text) => Some(text.to_owned()),
            None => item.opt_text("detail")?.map(str::to_owned),
        },
        cvss,
        affected: Vec::new(),
        statements,
        withdrawn: false,
        published: item.opt_text("published")?.map(str::to_owned),
        modified: item.opt_text("updated")?.map(str::to_owned),
        document: None,
    })
}

/// CycloneDX ratings often carry the vector without its `CVSS:3.1/` prefix; put it back from the
/// rating method so the vector can be scored. Non-CVSS methods (OWASP, SSVC) are skipped.
fn cyclonedx_vector(method: Option<&str>, vector: &str) -> Option<String> {
    let vector = vector.trim_start_matches('(').trim_end_matches(')');
    if vector.starts_with("CVSS:") {
        return Some(vector.to_owned());
    }
    match method {
        Some("CVSSv2") => Some(vector.to_owned()),
        Some("CVSSv3") => Some(format!("CVSS:3.0/{vector}")),
        Some("CVSSv31") => Some(format!("CVSS:3.1/{vector}")),
        Some("CVSSv4") => Some(format!("CVSS:4.0/{vector}")),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// CSAF 2.0

/// What the product tree says: product id → purl/CPE, and group id → product ids.
#[derive(Debug, Default)]
struct ProductTree {
    identifiers: HashMap<String, String>,
    groups: HashMap<String, Vec<String>>,
}

impl ProductTree {
    fn identifier(&self, product_id: &str) -> String {
        self.identifiers.get(product_id).cloned().unwrap_or_else(|| product_id.to_owned())
    }

    fn full_product_name(&mut self, product: Obj<'_, '_>) -> Result<(), AdvisoryError> {
        let product_id = product.req_str("product_id")?;
        if let Some(helper) = product.get("product_identification_helper") {
            let path = product.path_of("product_identification_helper");
            let helper = Obj::of(helper, &path)?;
            if let Some(identifier) = helper.opt_text("purl")?.or(helper.opt_text("cpe")?) {
                self.identifiers.insert(product_id.to_owned(), identifier.to_owned());
            }
        }
        Ok(())
    }

    fn branches(&mut self, parent: Obj<'_, '_>, depth: usize) -> Result<(), AdvisoryError> {
        let branches_path = parent.path_of("branches");
        let branches = parent.opt_array("branches")?;
        if !branches.is_empty() && depth > MAX_NESTING {
            return Err(AdvisoryError::TooDeep { path: branches_path });
        }
        for (position, branch) in branches.iter().enumerate() {
            let path = json::index(&branches_path, position);
            let branch = Obj::of(branch, &path)?;
            if let Some(product) = branch.get("product") {
                let product_path = branch.path_of("product");
                self.full_product_name(Obj::of(product, &product_path)?)?;
            }
            self.branches(branch, depth + 1)?;
        }
        Ok(())
    }
}

fn csaf(doc: Obj<'_, '_>) -> Result<Vec<AdvisoryDoc>, AdvisoryError> {
    let document_path = doc.path_of("document");
    let document = doc.get("document").ok_or_else(|| invalid(&document_path, "missing"))?;
    let document = Obj::of(document, &document_path)?;
    let version = document.req_str("csaf_version")?;
    if version != "2.0" {
        return Err(AdvisoryError::UnsupportedCsaf(version.to_owned()));
    }
    let category = document.req_str("category")?;
    if category != "csaf_vex" && category != "csaf_security_advisory" {
        let problem = format!("{category:?} is not csaf_vex or csaf_security_advisory");
        return Err(invalid(document.path_of("category"), problem));
    }
    let (tracking_id, modified) = match document.get("tracking") {
        None => (None, None),
        Some(tracking) => {
            let path = document.path_of("tracking");
            let tracking = Obj::of(tracking, &path)?;
            (tracking.opt_text("id")?, tracking.opt_text("current_release_date")?)
        }
    };

    let mut tree = ProductTree::default();
    if let Some(product_tree) = doc.get("product_tree") {
        let tree_path = doc.path_of("product_tree");
        let product_tree = Obj::of(product_tree, &tree_path)?;
        tree.branches(product_tree, 1)?;
        let names_path = product_tree.path_of("full_product_names");
        for (position, product) in product_tree.opt_array("full_product_names")?.iter().enumerate() {
            let path = json::index(&names_path, position);
            tree.full_product_name(Obj::of(product, &path)?)?;
        }
        // A relationship names a product installed on a platform; for matching, the component is
        // what counts, so the combined id takes the component's identifier.
        let relationships_path = product_tree.path_of("relationships");
        for (position, relationship) in product_tree.opt_array("relationships")?.iter().enumerate() {
            let path = json::index(&relationships_path, position);
            let relationship = Obj::of(relationship, &path)?;
            let component = relationship.req_str("product_reference")?;
            let name_path = relationship.path_of("full_product_name");
            let name = relationship.get("full_product_name").ok_or_else(|| invalid(&name_path, "missing"))?;
            let combined = Obj::of(name, &name_path)?.req_str("product_id")?;
            let identifier = tree.identifier(component);
            tree.identifiers.insert(combined.to_owned(), identifier);
        }
        let groups_path = product_tree.path_of("product_groups");
        for (position, group) in product_tree.opt_array("product_groups")?.iter().enumerate() {
            let path = json::index(&groups_path, position);
            let group = Obj::of(group, &path)?;
            let members = group.str_array("product_ids")?.into_iter().map(str::to_owned).collect();
            tree.groups.insert(group.req_str("group_id")?.to_owned(), members);
        }
    }

    let list = doc.opt_array("vulnerabilities")?;
    if list.len() > MAX_ADVISORIES {
        return Err(AdvisoryError::TooMany);
    }
    let list_path = doc.path_of("vulnerabilities");
    let mut out = Vec::with_capacity(list.len());
    for (position, item) in list.iter().enumerate() {
        let path = json::index(&list_path, position);
        let item = Obj::of(item, &path)?;
        let mut advisory = csaf_vulnerability(item, &tree, modified)?;
        if advisory.id.is_empty() {
            let Some(tracking_id) = tracking_id else {
                return Err(invalid(path, "no cve, no ids and no document.tracking.id to name it by"));
            };
            advisory.id = format!("{tracking_id}#{position}");
        }
        advisory.document = tracking_id.map(str::to_owned);
        out.push(advisory);
    }
    Ok(out)
}

/// Product ids listed under `product_ids` and, through the product groups, `group_ids`.
fn csaf_products(obj: Obj<'_, '_>, tree: &ProductTree) -> Result<Vec<String>, AdvisoryError> {
    let mut products: Vec<String> = obj.str_array("product_ids")?.into_iter().map(str::to_owned).collect();
    for group in obj.str_array("group_ids")? {
        if let Some(members) = tree.groups.get(group) {
            products.extend(members.iter().cloned());
        }
    }
    Ok(products)
}

fn csaf_vulnerability(
    item: Obj<'_, '_>,
    tree: &ProductTree,
    modified: Option<&str>,
) -> Result<AdvisoryDoc, AdvisoryError> {
    let mut names: Vec<String> = Vec::new();
    if let Some(cve) = item.opt_text("cve")? {
        names.push(cve.to_owned());
    }
    let ids_path = item.path_of("ids");
    for (position, entry) in item.opt_array("ids")?.iter().enumerate() {
        let path = json::index(&ids_path, position);
        let text = Obj::of(entry, &path)?.req_str("text")?.trim();
        if !text.is_empty() && !names.iter().any(|name| name == text) {
            names.push(text.to_owned());
        }
    }
    let mut names = names.into_iter();
    let id = names.next().unwrap_or_default();
    let aliases = names.collect();

    let mut summary = item.opt_text("title")?.map(str::to_owned);
    let notes_path = item.path_of("notes");
    for (position, note) in item.opt_array("notes")?.iter().enumerate() {
        let path = json::index(&notes_path, position);
        let note = Obj::of(note, &path)?;
        if summary.is_none() && matches!(note.opt_text("category")?, Some("summary" | "description")) {
            summary = note.opt_text("text")?.map(str::to_owned);
        }
    }

    let mut cvss = Vec::new();
    let scores_path = item.path_of("scores");
    for (position, score) in item.opt_array("scores")?.iter().enumerate() {
        let path = json::index(&scores_path, position);
        let score = Obj::of(score, &path)?;
        for key in ["cvss_v3", "cvss_v2"] {
            if let Some(block) = score.get(key) {
                let block_path = score.path_of(key);
                let vector = Obj::of(block, &block_path)?.req_str("vectorString")?.trim().to_owned();
                if !cvss.contains(&vector) {
                    cvss.push(vector);
                }
            }
        }
    }

    // Justifications for not-affected products: flags first, impact threats as a fallback.
    let mut justifications: HashMap<String, String> = HashMap::new();
    let flags_path = item.path_of("flags");
    for (position, flag) in item.opt_array("flags")?.iter().enumerate() {
        let path = json::index(&flags_path, position);
        let flag = Obj::of(flag, &path)?;
        let label = flag.req_str("label")?;
        for product in csaf_products(flag, tree)? {
            justifications.entry(product).or_insert_with(|| label.to_owned());
        }
    }
    let threats_path = item.path_of("threats");
    for (position, threat) in item.opt_array("threats")?.iter().enumerate() {
        let path = json::index(&threats_path, position);
        let threat = Obj::of(threat, &path)?;
        if threat.opt_text("category")? == Some("impact")
            && let Some(details) = threat.opt_text("details")?
        {
            for product in csaf_products(threat, tree)? {
                justifications.entry(product).or_insert_with(|| details.to_owned());
            }
        }
    }

    let mut statements = Vec::new();
    if let Some(status) = item.get("product_status") {
        let path = item.path_of("product_status");
        let status = Obj::of(status, &path)?;
        for (key, kind) in [
            ("known_affected", VexStatus::Affected),
            ("first_affected", VexStatus::Affected),
            ("last_affected", VexStatus::Affected),
            ("fixed", VexStatus::Fixed),
            ("first_fixed", VexStatus::Fixed),
            ("under_investigation", VexStatus::UnderInvestigation),
            ("known_not_affected", VexStatus::NotAffected { justification: None }),
        ] {
            for product in status.str_array(key)? {
                let status = match kind {
                    VexStatus::NotAffected { .. } => {
                        VexStatus::NotAffected { justification: justifications.get(product).cloned() }
                    }
                    ref other => other.clone(),
                };
                statements.push(VexStatement { product: tree.identifier(product), status });
            }
        }
    }

    Ok(AdvisoryDoc {
        format: AdvisoryFormat::Csaf,
        id,
        aliases,
        summary,
        cvss,
        affected: Vec::new(),
        statements,
        withdrawn: false,
        published: item.opt_text("release_date")?.map(str::to_owned),
        modified: modified.map(str::to_owned),
        document: None,
    })
}
