//! An OpenAI-compatible Chat Completions answer, streamed (`"stream":
//! true`): server-sent events whose data is a `chat.completion.chunk`, and
//! `[DONE]` at the end. Bytes in, pieces of the answer out.

use super::sse::{Decoder, Event, SseError};
use serde::Deserialize;

/// What the model said, piece by piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// More of the answer.
    Text(String),
    /// The model stopped, and why.
    Finished(Finish),
}

/// Why the model stopped (`finish_reason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// The answer is complete.
    Stop,
    /// It reached the token limit: the answer is cut short.
    Length,
    /// The provider's filter withheld the rest.
    ContentFilter,
    /// Another reason (`tool_calls`, a provider's own).
    Other(String),
}

impl Finish {
    fn from_reason(reason: &str) -> Finish {
        match reason {
            "stop" => Finish::Stop,
            "length" => Finish::Length,
            "content_filter" => Finish::ContentFilter,
            other => Finish::Other(other.to_owned()),
        }
    }
}

/// Why a streamed answer could not be read to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Events(#[from] SseError),
    /// The service reported an error inside the stream (after its 200).
    #[error("the model's service stopped the answer: {message}")]
    Model {
        kind: Option<String>,
        code: Option<String>,
        message: String,
    },
    #[error("an event of the answer is not a Chat Completions chunk: {0}")]
    NotAChunk(String),
    /// The stream ended with neither `[DONE]` nor a finish reason.
    #[error("the answer's stream ended before the answer did")]
    Cut,
}

/// A streamed answer being read.
#[derive(Debug, Default)]
pub struct Completion {
    events: Decoder,
    finish: Option<Finish>,
    done: bool,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    error: Option<ModelError>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct ModelError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<serde_json::Value>,
}

impl From<ModelError> for StreamError {
    fn from(error: ModelError) -> StreamError {
        StreamError::Model {
            kind: error.kind,
            code: error.code.map(|code| match code {
                serde_json::Value::String(code) => code,
                other => other.to_string(),
            }),
            message: brief(error.message.unwrap_or_default()),
        }
    }
}

/// At most 300 bytes of a service's words, for an error and its log line.
fn brief(mut text: String) -> String {
    const MOST: usize = 300;
    if text.len() > MOST {
        let mut end = MOST;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

impl Completion {
    pub fn new() -> Completion {
        Completion::default()
    }

    /// Reads `bytes`, the next part of the stream, cut anywhere: the pieces
    /// of the answer they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Piece>, StreamError> {
        let mut events = Vec::new();
        self.events.feed(bytes, &mut events)?;
        let mut pieces = Vec::new();
        for event in events {
            self.read(event, &mut pieces)?;
        }
        Ok(pieces)
    }

    /// Whether the answer has ended (`[DONE]`, or a finish reason).
    pub fn is_finished(&self) -> bool {
        self.done || self.finish.is_some()
    }

    /// At the end of the stream: whether the answer got to its end. Some
    /// services send a finish reason and no `[DONE]`; neither is a cut.
    pub fn end(&self) -> Result<(), StreamError> {
        if self.is_finished() {
            Ok(())
        } else {
            Err(StreamError::Cut)
        }
    }

    fn read(&mut self, event: Event, pieces: &mut Vec<Piece>) -> Result<(), StreamError> {
        if self.done {
            return Ok(());
        }
        if event.data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        if event.kind == "error" {
            return Err(match serde_json::from_str::<Chunk>(&event.data) {
                Ok(Chunk {
                    error: Some(error), ..
                }) => error.into(),
                _ => StreamError::Model {
                    kind: None,
                    code: None,
                    message: brief(event.data),
                },
            });
        }
        let chunk: Chunk = serde_json::from_str(&event.data)
            .map_err(|error| StreamError::NotAChunk(brief(error.to_string())))?;
        if let Some(error) = chunk.error {
            return Err(error.into());
        }
        // One answer is asked for (`n` = 1): other choices are not ours.
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(text) = choice.delta.and_then(|d| d.content) {
                if !text.is_empty() {
                    pieces.push(Piece::Text(text));
                }
            }
            if let Some(reason) = choice.finish_reason {
                let finish = Finish::from_reason(&reason);
                self.finish = Some(finish.clone());
                pieces.push(Piece::Finished(finish));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer's text and how it ended, read with the stream cut at
    /// `at`.
    fn read_cut(stream: &str, at: usize) -> Result<(String, Option<Finish>), StreamError> {
        let mut completion = Completion::new();
        let mut pieces = completion.feed(&stream.as_bytes()[..at])?;
        pieces.extend(completion.feed(&stream.as_bytes()[at..])?);
        completion.end()?;
        let mut text = String::new();
        let mut finish = None;
        for piece in pieces {
            match piece {
                Piece::Text(more) => text.push_str(&more),
                Piece::Finished(why) => finish = Some(why),
            }
        }
        Ok((text, finish))
    }

    /// The same result for the stream cut at every byte.
    fn read_every_cut(stream: &str) -> Result<(String, Option<Finish>), StreamError> {
        let whole = read_cut(stream, stream.len());
        for at in 0..=stream.len() {
            assert_eq!(
                read_cut(stream, at),
                whole,
                "cut at byte {at} of {stream:?}"
            );
        }
        whole
    }

    fn chunk(content: &str) -> String {
        format!(
            "data: {}\n\n",
            serde_json::json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]})
        )
    }

    fn finish(reason: &str) -> String {
        format!(
            "data: {}\n\n",
            serde_json::json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})
        )
    }

    #[test]
    fn an_answer_ends_with_done() {
        let stream = format!(
            "{}{}{}{}data: [DONE]\n\n",
            r#"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#.to_owned() + "\n\n",
            chunk("Hello"),
            chunk(", world"),
            finish("stop")
        );
        assert_eq!(
            read_every_cut(&stream),
            Ok(("Hello, world".into(), Some(Finish::Stop)))
        );
    }

    #[test]
    fn comments_crlf_and_empty_deltas_are_read_past() {
        let stream = format!(
            ": OPENROUTER PROCESSING\r\n\r\n{}data: {{\"choices\":[{{\"index\":0,\"delta\":{{}}}}]}}\r\n\r\ndata: {{\"choices\":[]}}\r\n\r\n{}{}data: [DONE]\r\n\r\n",
            chunk("a").replace('\n', "\r\n"),
            chunk("b").replace('\n', "\r\n"),
            finish("stop").replace('\n', "\r\n")
        );
        assert_eq!(
            read_every_cut(&stream),
            Ok(("ab".into(), Some(Finish::Stop)))
        );
    }

    #[test]
    fn a_character_split_across_reads_is_whole() {
        let stream = format!("{}{}data: [DONE]\n\n", chunk("é€😀 ok"), finish("stop"));
        assert_eq!(
            read_every_cut(&stream),
            Ok(("é€😀 ok".into(), Some(Finish::Stop)))
        );
    }

    #[test]
    fn length_and_content_filter_say_why_the_answer_stopped() {
        for (reason, why) in [
            ("length", Finish::Length),
            ("content_filter", Finish::ContentFilter),
            ("tool_calls", Finish::Other("tool_calls".into())),
        ] {
            let stream = format!("{}{}data: [DONE]\n\n", chunk("partial"), finish(reason));
            assert_eq!(read_every_cut(&stream), Ok(("partial".into(), Some(why))));
        }
    }

    #[test]
    fn a_finish_reason_without_done_is_an_end() {
        let stream = format!("{}{}", chunk("x"), finish("stop"));
        assert_eq!(
            read_every_cut(&stream),
            Ok(("x".into(), Some(Finish::Stop)))
        );
    }

    #[test]
    fn an_error_object_mid_stream_stops_the_answer() {
        let error = StreamError::Model {
            kind: Some("server_error".into()),
            code: Some("502".into()),
            message: "Upstream error".into(),
        };
        let stream = format!(
            "{}data: {{\"error\":{{\"message\":\"Upstream error\",\"type\":\"server_error\",\"code\":502}}}}\n\n",
            chunk("half")
        );
        assert_eq!(read_every_cut(&stream), Err(error.clone()));
        let stream = format!(
            "{}event: error\ndata: {{\"error\":{{\"message\":\"Upstream error\",\"type\":\"server_error\",\"code\":\"502\"}}}}\n\n",
            chunk("half")
        );
        assert_eq!(read_every_cut(&stream), Err(error));
    }

    #[test]
    fn a_stream_that_stops_without_an_end_is_cut() {
        let stream = chunk("half an ans");
        assert_eq!(read_every_cut(&stream), Err(StreamError::Cut));
        // An event not yet dispatched is not part of the answer.
        let stream = format!("{}data: [DONE]", chunk("x"));
        assert_eq!(read_every_cut(&stream), Err(StreamError::Cut));
    }

    #[test]
    fn what_follows_done_is_not_the_answer() {
        let stream = format!("{}data: [DONE]\n\n{}", chunk("x"), chunk("y"));
        assert_eq!(read_every_cut(&stream), Ok(("x".into(), None)));
    }

    #[test]
    fn data_that_is_not_a_chunk_is_an_error() {
        assert!(matches!(
            read_cut("data: {not json\n\n", 0),
            Err(StreamError::NotAChunk(_))
        ));
    }
}
