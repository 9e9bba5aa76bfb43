//! The device side of MQTT, sans I/O: who a session belongs to, what it may publish and
//! subscribe to (the topic contract), and when it has gone quiet.
//!
//! Topic contract (DESIGN §4): a device touches only `devices/<its id>/…`:
//! it publishes `telemetry`, `events` and `commands/result`, and subscribes to `commands`.
//! A quarantined device keeps `events` and `commands/result` and its `commands`, nothing else.

use std::collections::VecDeque;
use std::fmt;

/// What a publish carries, by topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    Telemetry,
    Event,
    CommandResult,
}

impl TopicKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Telemetry => "telemetry",
            Self::Event => "event",
            Self::CommandResult => "command_result",
        }
    }
}

/// A refused topic, with the reason recorded as a security event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclViolation {
    pub topic: String,
    pub reason: &'static str,
}

impl fmt::Display for AclViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "topic {:.128?} refused: {}", self.topic, self.reason)
    }
}

/// Why a CONNECT was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectRefusal {
    /// The client id is not the device id of the certificate.
    ClientIdMismatch,
    /// A second CONNECT on one connection.
    AlreadyConnected,
}

/// How a QoS 1 PUBLISH is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckReason {
    /// Durably stored.
    Stored,
    /// The topic is not the device's to publish on (MQTT 5: 0x87).
    NotAuthorized,
    /// The payload was refused (MQTT 5: 0x99).
    PayloadInvalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owed {
    Decided { pkid: Option<u16>, reason: AckReason },
    Storing { pkid: Option<u16>, batch: u64 },
}

/// The PUBACKs a session owes, sans I/O. MQTT requires them in the order the PUBLISHes arrived;
/// a stored message's PUBACK may go only once the batch holding it is durable. The plane reports
/// what it decided and which batches committed; the queue says which PUBACKs may go now, and
/// whether the session may read on (at most `limit` messages wait for storage at once).
///
/// QoS 0 messages take part (`pkid: None`): they need no PUBACK, but they count against the
/// limit while stored, so a QoS 0 flood cannot outrun storage either.
#[derive(Debug, Clone)]
pub struct AckQueue {
    owed: VecDeque<Owed>,
    storing: usize,
    limit: usize,
}

impl AckQueue {
    pub fn new(limit: usize) -> Self {
        Self { owed: VecDeque::new(), storing: 0, limit: limit.max(1) }
    }

    /// Whether another message may be read (fewer than `limit` wait for storage).
    pub fn has_room(&self) -> bool {
        self.storing < self.limit
    }

    /// Messages waiting for storage.
    pub fn storing(&self) -> usize {
        self.storing
    }

    /// A message answered without storage (refused, or stored synchronously).
    pub fn decided(&mut self, pkid: Option<u16>, reason: AckReason) {
        self.owed.push_back(Owed::Decided { pkid, reason });
    }

    /// A message handed to storage in `batch`.
    pub fn store(&mut self, pkid: Option<u16>, batch: u64) {
        self.storing += 1;
        self.owed.push_back(Owed::Storing { pkid, batch });
    }

    /// `batch` is durable: its messages may be acknowledged (in their turn).
    pub fn stored(&mut self, batch: u64) {
        for o in &mut self.owed {
            if let Owed::Storing { pkid, batch: b } = *o
                && b == batch
            {
                *o = Owed::Decided { pkid, reason: AckReason::Stored };
                self.storing -= 1;
            }
        }
    }

    /// The PUBACKs that may go now, in order: everything decided at the front of the queue.
    pub fn release(&mut self) -> Vec<(u16, AckReason)> {
        let mut out = Vec::new();
        while let Some(Owed::Decided { pkid, reason }) = self.owed.front().copied() {
            self.owed.pop_front();
            if let Some(pkid) = pkid {
                out.push((pkid, reason));
            }
        }
        out
    }
}

/// One device's session on one connection.
#[derive(Debug, Clone)]
pub struct Session {
    device_id: String,
    connected: bool,
    quarantined: bool,
    keep_alive_ms: i64,
    last_seen_ms: i64,
}

impl Session {
    pub fn new(device_id: &str, quarantined: bool, now_ms: i64) -> Self {
        Self { device_id: device_id.to_owned(), connected: false, quarantined, keep_alive_ms: 0, last_seen_ms: now_ms }
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    pub fn is_quarantined(&self) -> bool {
        self.quarantined
    }

    pub fn set_quarantined(&mut self, quarantined: bool) {
        self.quarantined = quarantined;
    }

    /// The first packet: the client id must be the device id.
    pub fn connect(&mut self, client_id: &str, keep_alive_secs: u16, now_ms: i64) -> Result<(), ConnectRefusal> {
        if self.connected {
            return Err(ConnectRefusal::AlreadyConnected);
        }
        if client_id != self.device_id {
            return Err(ConnectRefusal::ClientIdMismatch);
        }
        self.connected = true;
        self.keep_alive_ms = i64::from(keep_alive_secs) * 1000;
        self.last_seen_ms = now_ms;
        Ok(())
    }

    /// Any packet arrived.
    pub fn seen(&mut self, now_ms: i64) {
        self.last_seen_ms = now_ms;
    }

    /// MQTT allows one and a half keep-alive periods of silence.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.keep_alive_ms > 0 && now_ms - self.last_seen_ms > self.keep_alive_ms * 3 / 2
    }

    /// When the session expires if nothing arrives.
    pub fn deadline_ms(&self) -> Option<i64> {
        (self.keep_alive_ms > 0).then(|| self.last_seen_ms + self.keep_alive_ms * 3 / 2)
    }

    fn own(&self, topic: &str) -> Option<String> {
        topic.strip_prefix("devices/")?.strip_prefix(self.device_id.as_str())?.strip_prefix('/').map(str::to_owned)
    }

    pub fn authorize_publish(&self, topic: &str) -> Result<TopicKind, AclViolation> {
        let refuse = |reason| Err(AclViolation { topic: topic.to_owned(), reason });
        if topic.contains(['+', '#', '\0']) {
            return refuse("wildcards are not allowed in a published topic");
        }
        let Some(rest) = self.own(topic) else { return refuse("a device may only publish under devices/<its id>/") };
        let kind = match rest.as_str() {
            "telemetry" => TopicKind::Telemetry,
            "events" => TopicKind::Event,
            "commands/result" => TopicKind::CommandResult,
            _ => return refuse("not a device topic (telemetry, events, commands/result)"),
        };
        if self.quarantined && kind == TopicKind::Telemetry {
            return refuse("quarantined: only events and command results are accepted");
        }
        Ok(kind)
    }

    pub fn authorize_subscribe(&self, filter: &str) -> Result<(), AclViolation> {
        if self.own(filter).as_deref() == Some("commands") {
            Ok(())
        } else {
            Err(AclViolation {
                topic: filter.to_owned(),
                reason: "a device may only subscribe to devices/<its id>/commands",
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "06h05qdcsfk8ph7e73kt";

    fn session() -> Session {
        let mut s = Session::new(ID, false, 0);
        s.connect(ID, 30, 0).unwrap();
        s
    }

    #[test]
    fn connect_rules() {
        let mut s = Session::new(ID, false, 0);
        assert_eq!(s.connect("someone-else", 30, 0), Err(ConnectRefusal::ClientIdMismatch));
        s.connect(ID, 30, 0).unwrap();
        assert_eq!(s.connect(ID, 30, 0), Err(ConnectRefusal::AlreadyConnected));
    }

    #[test]
    fn a_device_touches_only_its_own_topics() {
        let s = session();
        assert_eq!(s.authorize_publish(&format!("devices/{ID}/telemetry")), Ok(TopicKind::Telemetry));
        assert_eq!(s.authorize_publish(&format!("devices/{ID}/events")), Ok(TopicKind::Event));
        assert_eq!(s.authorize_publish(&format!("devices/{ID}/commands/result")), Ok(TopicKind::CommandResult));
        for bad in [
            "devices/other/telemetry".to_owned(),
            format!("devices/{ID}x/telemetry"),
            format!("devices/{ID}/commands"),
            format!("devices/{ID}/telemetry/extra"),
            format!("devices/{ID}/+"),
            "devices/#".to_owned(),
            format!("devices/{ID}"),
            "".to_owned(),
        ] {
            assert!(s.authorize_publish(&bad).is_err(), "{bad}");
        }
        assert!(s.authorize_subscribe(&format!("devices/{ID}/commands")).is_ok());
        for bad in ["devices/#", "#", "devices/+/commands", "devices/other/commands"] {
            assert!(s.authorize_subscribe(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quarantine_keeps_events_and_results_only() {
        let mut s = session();
        s.set_quarantined(true);
        assert!(s.authorize_publish(&format!("devices/{ID}/telemetry")).is_err());
        assert!(s.authorize_publish(&format!("devices/{ID}/events")).is_ok());
        assert!(s.authorize_subscribe(&format!("devices/{ID}/commands")).is_ok());
        s.set_quarantined(false);
        assert!(s.authorize_publish(&format!("devices/{ID}/telemetry")).is_ok());
    }

    #[test]
    fn keep_alive() {
        let mut s = session();
        assert!(!s.expired(45_000));
        assert!(s.expired(45_001));
        s.seen(40_000);
        assert!(!s.expired(80_000));
        assert_eq!(s.deadline_ms(), Some(85_000));
    }

    /// One step of a session's acknowledgement traffic.
    #[derive(Debug, Clone)]
    enum Step {
        Refuse,
        Store,
        Qos0Store,
        Seal,
        Commit,
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![Just(Step::Refuse), Just(Step::Store), Just(Step::Qos0Store), Just(Step::Seal), Just(Step::Commit)]
    }

    proptest::proptest! {
        /// Whatever mix of refusals, stores, batch boundaries and commits: PUBACKs go out in
        /// PUBLISH order, each exactly once, never before the message's batch committed, and the
        /// queue never lets more than `limit` messages wait for storage.
        #[test]
        fn pubacks_in_order_and_only_after_commit(steps in proptest::collection::vec(step(), 0..200)) {
            const LIMIT: usize = 8;
            let mut q = AckQueue::new(LIMIT);
            let mut next_pkid = 0u16;
            let mut sent_order = Vec::new(); // pkids owed a PUBACK, in PUBLISH order
            let mut released = Vec::new();
            let (mut open, mut oldest) = (0u64, 0u64); // batch being filled; oldest uncommitted
            let mut batch_of = std::collections::HashMap::new();
            let mut committed = std::collections::HashSet::new();
            for s in steps {
                match s {
                    Step::Refuse => {
                        next_pkid += 1;
                        q.decided(Some(next_pkid), AckReason::PayloadInvalid);
                        sent_order.push(next_pkid);
                    }
                    Step::Store | Step::Qos0Store if q.has_room() => {
                        let pkid = matches!(s, Step::Store).then(|| { next_pkid += 1; next_pkid });
                        q.store(pkid, open);
                        if let Some(p) = pkid {
                            sent_order.push(p);
                            batch_of.insert(p, open);
                        }
                    }
                    Step::Store | Step::Qos0Store => {}
                    Step::Seal => open += 1,
                    Step::Commit if oldest < open => {
                        q.stored(oldest);
                        committed.insert(oldest);
                        oldest += 1;
                    }
                    Step::Commit => {}
                }
                proptest::prop_assert!(q.storing() <= LIMIT);
                for (pkid, reason) in q.release() {
                    if let Some(b) = batch_of.get(&pkid) {
                        proptest::prop_assert!(committed.contains(b), "PUBACK {} before batch {} committed", pkid, b);
                        proptest::prop_assert_eq!(reason, AckReason::Stored);
                    }
                    released.push(pkid);
                }
            }
            // Commit everything left: every owed PUBACK goes, in order, exactly once.
            while oldest <= open {
                q.stored(oldest);
                oldest += 1;
            }
            released.extend(q.release().into_iter().map(|(p, _)| p));
            proptest::prop_assert_eq!(released, sent_order);
            proptest::prop_assert_eq!(q.storing(), 0);
        }
    }
}
