//! Server-sent events, as the WHATWG HTML standard parses them ("Parsing an
//! event stream"): lines end with CRLF, LF or CR; a line starting with `:`
//! is a comment; `field: value` loses one space after the colon; `data`
//! lines accumulate, joined with LF; a blank line dispatches the event.
//!
//! Bytes go in as they arrive, cut anywhere: a line is decoded only once it
//! is whole, and CR and LF never occur inside a multi-byte UTF-8 sequence,
//! so a character split across reads is put back together.

/// The longest line kept: a model's chunk is a few hundred bytes; a server
/// that sends megabytes without a line end is not one to buffer for.
pub const MAX_LINE: usize = 1024 * 1024;

/// One event: its type (`message` unless an `event:` line named one) and
/// its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: String,
    pub data: String,
}

/// Why a stream could not be read as server-sent events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("a line of the event stream is longer than {MAX_LINE} bytes")]
    LineTooLong,
    /// `data` lines without the blank line that ends an event: bounded
    /// as a line is.
    #[error("an event of the stream is longer than {MAX_LINE} bytes")]
    EventTooLong,
    #[error("the event stream is not UTF-8")]
    NotUtf8,
}

/// The parser's state between reads.
#[derive(Debug, Default)]
pub struct Decoder {
    line: Vec<u8>,
    data: String,
    has_data: bool,
    kind: String,
    /// The last read ended with CR: an LF that starts the next belongs to
    /// the same line end.
    after_cr: bool,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Parses `bytes`, the next part of the stream, adding the events it
    /// completes to `events`.
    pub fn feed(&mut self, bytes: &[u8], events: &mut Vec<Event>) -> Result<(), SseError> {
        let mut rest = bytes;
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if let [b'\n', tail @ ..] = rest {
                rest = tail;
            }
        }
        while let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (head, tail) = rest.split_at(end);
            self.push(head)?;
            self.end_line(events)?;
            // CRLF is one line end; a CR at the end of this read may be
            // the first half of one.
            rest = match tail {
                [b'\r', b'\n', after @ ..] => after,
                [b'\r'] => {
                    self.after_cr = true;
                    &[]
                }
                [_, after @ ..] => after,
                [] => &[],
            };
        }
        self.push(rest)
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if self.line.len() + bytes.len() > MAX_LINE {
            return Err(SseError::LineTooLong);
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn end_line(&mut self, events: &mut Vec<Event>) -> Result<(), SseError> {
        let bytes = std::mem::take(&mut self.line);
        let line = String::from_utf8(bytes).map_err(|_| SseError::NotUtf8)?;
        // A byte-order mark may start the stream.
        let line = line.strip_prefix('\u{feff}').unwrap_or(&line);
        if line.is_empty() {
            if self.has_data {
                let kind = std::mem::take(&mut self.kind);
                events.push(Event {
                    kind: if kind.is_empty() {
                        "message".to_owned()
                    } else {
                        kind
                    },
                    data: std::mem::take(&mut self.data),
                });
                self.has_data = false;
            } else {
                self.kind.clear();
            }
            return Ok(());
        }
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.data.len() + value.len() + 1 > MAX_LINE {
                    return Err(SseError::EventTooLong);
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.kind = value.to_owned(),
            // `id` and `retry` are for reconnecting, which a model's
            // answer never does; unknown fields are ignored.
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_lines_without_an_end_are_refused_rather_than_buffered() {
        let mut decoder = Decoder::new();
        let mut events = Vec::new();
        let line = format!("data: {}\n", "x".repeat(1000));
        let mut refused = None;
        for _ in 0..(MAX_LINE / 1000 + 2) {
            if let Err(error) = decoder.feed(line.as_bytes(), &mut events) {
                refused = Some(error);
                break;
            }
        }
        assert_eq!(refused, Some(SseError::EventTooLong));
        assert!(events.is_empty());
    }

    fn parse_split(stream: &[u8], at: usize) -> Result<Vec<Event>, SseError> {
        let mut decoder = Decoder::new();
        let mut events = Vec::new();
        decoder.feed(&stream[..at], &mut events)?;
        decoder.feed(&stream[at..], &mut events)?;
        Ok(events)
    }

    fn event(data: &str) -> Event {
        Event {
            kind: "message".into(),
            data: data.into(),
        }
    }

    #[test]
    fn every_line_end_and_every_cut_give_the_same_events() {
        for end in ["\n", "\r\n", "\r"] {
            let stream = [
                "data: one",
                ": a comment",
                "data:two",
                "",
                "event: error",
                "data: é€😀",
                "data: x",
                "",
                "data: unfinished",
            ]
            .join(end);
            for at in 0..=stream.len() {
                assert_eq!(
                    parse_split(stream.as_bytes(), at).unwrap(),
                    [
                        event("one\ntwo"),
                        Event {
                            kind: "error".into(),
                            data: "é€😀\nx".into()
                        }
                    ],
                    "line end {end:?}, cut at {at}"
                );
            }
        }
    }

    #[test]
    fn a_cr_at_the_end_of_one_read_and_an_lf_at_the_start_of_the_next_are_one_line_end() {
        let mut decoder = Decoder::new();
        let mut events = Vec::new();
        decoder.feed(b"data: a\r", &mut events).unwrap();
        decoder.feed(b"", &mut events).unwrap();
        decoder.feed(b"\ndata: b\r", &mut events).unwrap();
        decoder.feed(b"\n\r\n", &mut events).unwrap();
        assert_eq!(events, [event("a\nb")]);
    }

    #[test]
    fn a_blank_line_without_data_dispatches_nothing_and_forgets_the_type() {
        let events = parse_split(b"event: error\n\ndata: x\n\n", 0).unwrap();
        assert_eq!(events, [event("x")]);
    }

    #[test]
    fn an_endless_line_is_refused_rather_than_buffered() {
        let mut decoder = Decoder::new();
        let mut events = Vec::new();
        let chunk = vec![b'a'; 64 * 1024];
        let mut result = Ok(());
        for _ in 0..17 {
            result = decoder.feed(&chunk, &mut events);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(SseError::LineTooLong));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_an_error() {
        assert_eq!(parse_split(b"data: \xff\n\n", 3), Err(SseError::NotUtf8));
    }
}
