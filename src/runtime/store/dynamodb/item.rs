//! A chat's record as a DynamoDB item, in DynamoDB's JSON, and the item's
//! size as DynamoDB counts it.

use super::*;
use base64::Engine as _;

/// An attribute's value in DynamoDB's JSON: `{"S": "text"}`, `{"N": "12"}`,
/// `{"M": {...}}`. The kinds the store never writes are kept as they come,
/// so that a record can be read, measured and copied whole.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AttributeValue {
    S(String),
    N(String),
    M(HashMap<String, AttributeValue>),
    L(Vec<AttributeValue>),
    #[serde(rename = "BOOL")]
    Bool(bool),
    #[serde(rename = "NULL")]
    Null(bool),
    /// Base64, as the protocol carries it.
    B(String),
    #[serde(rename = "SS")]
    Ss(Vec<String>),
    #[serde(rename = "NS")]
    Ns(Vec<String>),
    #[serde(rename = "BS")]
    Bs(Vec<String>),
}

impl AttributeValue {
    /// The number's text, if this is a number.
    pub fn as_n(&self) -> Option<&str> {
        match self {
            AttributeValue::N(n) => Some(n),
            _ => None,
        }
    }
}

/// A DynamoDB item: its attributes by name.
pub type Item = HashMap<String, AttributeValue>;

/// The bytes a base64 value stands for.
fn decoded_len(base64: &str) -> usize {
    base64::engine::general_purpose::STANDARD
        .decode(base64)
        .map_or(base64.len(), |bytes| bytes.len())
}

pub(super) fn number(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// `q` of a deferred entry: accepted, or on the queue. Absent when the
/// update is answered where it arrived.
pub(super) const QUEUED_ACCEPTED: i64 = 1;

pub(super) const QUEUED_ENQUEUED: i64 = 2;

pub(super) fn pending_value(pending: &Pending) -> AttributeValue {
    let mut entry = HashMap::from([
        ("a".to_owned(), AttributeValue::S(pending.actions.clone())),
        ("n".to_owned(), number(pending.sent)),
        ("l".to_owned(), number(pending.lease_until)),
        ("o".to_owned(), number(pending.owner)),
        ("e".to_owned(), number(pending.expires)),
    ]);
    match pending.queued {
        Queued::No => {}
        Queued::Accepted => {
            entry.insert("q".to_owned(), number(QUEUED_ACCEPTED));
        }
        Queued::Enqueued => {
            entry.insert("q".to_owned(), number(QUEUED_ENQUEUED));
        }
    }
    AttributeValue::M(entry)
}

/// A done entry's value: when (from 0 up), or until when, negated.
pub(super) fn done_value(done: Done) -> AttributeValue {
    match done {
        Done::At(at) => number(at.max(0)),
        Done::Until(until) => number(until.max(1).saturating_neg()),
    }
}

pub(super) fn record_of(item: &Item) -> Result<ChatRecord, StoreError> {
    let corrupt = |what: &str| StoreError::Unreadable(format!("{what} in the chat's item"));
    let int = |value: Option<&AttributeValue>, what: &str| -> Result<i64, StoreError> {
        value
            .and_then(AttributeValue::as_n)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| corrupt(what))
    };
    let version = int(item.get("v"), "no version")?;
    let state = match item.get("s") {
        None => None,
        Some(AttributeValue::S(state)) => Some(state.clone()),
        Some(_) => return Err(corrupt("a state that is not a string")),
    };
    let mut record = ChatRecord {
        version: u64::try_from(version).map_err(|_| corrupt("a negative version"))?,
        state,
        ..ChatRecord::default()
    };
    if let Some(AttributeValue::M(pending)) = item.get("p") {
        for (id, entry) in pending {
            let id: i64 = id.parse().map_err(|_| corrupt("an outbox key"))?;
            let AttributeValue::M(entry) = entry else {
                return Err(corrupt("an outbox that is not a map"));
            };
            let actions = match entry.get("a") {
                Some(AttributeValue::S(actions)) => actions.clone(),
                _ => return Err(corrupt("an outbox without actions")),
            };
            record.pending.insert(
                id,
                Pending {
                    actions,
                    sent: u32::try_from(int(entry.get("n"), "an outbox count")?)
                        .map_err(|_| corrupt("an outbox count"))?,
                    lease_until: int(entry.get("l"), "an outbox lease")?,
                    // Outboxes written before leases had owners have none.
                    owner: match entry.get("o") {
                        None => 0,
                        Some(owner) => owner
                            .as_n()
                            .and_then(|n| n.parse().ok())
                            .ok_or_else(|| corrupt("an outbox owner"))?,
                    },
                    expires: int(entry.get("e"), "an outbox expiry")?,
                    queued: match entry.get("q") {
                        None => Queued::No,
                        Some(q) => match int(Some(q), "a queue mark")? {
                            QUEUED_ACCEPTED => Queued::Accepted,
                            QUEUED_ENQUEUED => Queued::Enqueued,
                            _ => return Err(corrupt("a queue mark")),
                        },
                    },
                },
            );
        }
    }
    if let Some(AttributeValue::M(done)) = item.get("d") {
        for (id, at) in done {
            let id = id.parse().map_err(|_| corrupt("a done id"))?;
            match int(Some(at), "a done time")? {
                at if at >= 0 => record.done.insert(id, at),
                until => record.done_until.insert(id, until.saturating_neg()),
            };
        }
    }
    Ok(record)
}

/// An item's size as DynamoDB counts it for its 400 KB limit and for
/// billing (a write costs one unit per KB of the larger of the item's size
/// before and after): each attribute's name and value; a string its UTF-8
/// bytes, a number one byte per two significant digits plus one, a map or
/// list 3 bytes plus one per element and its elements ("Item sizes and
/// formats", DynamoDB developer guide).
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

pub(super) fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => decoded_len(b),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(key, value)| key.len() + value_size(value) + 1)
                .sum::<usize>()
        }
        AttributeValue::L(list) => 3 + list.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| decoded_len(b)).sum(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
    }
}

pub(super) fn number_size(number: &str) -> usize {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.max(1).div_ceil(2) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_sizes_are_counted_as_dynamodb_counts_them() {
        let item = Item::from([
            ("pk".to_owned(), AttributeValue::S("chat#42".into())),
            ("v".to_owned(), number(12_345)),
            (
                "d".to_owned(),
                AttributeValue::M(HashMap::from([("7".to_owned(), number(100))])),
            ),
        ]);
        // pk: 2 + 7; v: 1 + (3 + 1); d: 1 + 3 + (1 + 2 + 1).
        assert_eq!(item_size(&item), 9 + 5 + 8);
    }

    #[test]
    fn an_item_reads_and_writes_as_dynamodbs_json() {
        let json = serde_json::json!({
            "pk": {"S": "chat#42"}, "v": {"N": "3"}, "ok": {"BOOL": true},
            "gone": {"NULL": true}, "b": {"B": "aGk="}, "l": {"L": [{"N": "1"}]},
            "m": {"M": {"7": {"N": "100"}}}, "ss": {"SS": ["a"]}
        });
        let item: Item = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(item["v"], number(3));
        assert_eq!(item["b"], AttributeValue::B("aGk=".into()));
        assert_eq!(serde_json::to_value(&item).unwrap(), json);
        assert_eq!(value_size(&item["b"]), 2, "the bytes, not their base64");
    }
}
