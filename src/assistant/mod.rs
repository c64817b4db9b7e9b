//! An assistant that answers with a language model: an OpenAI-compatible
//! Chat Completions API, its answer streamed as server-sent events.
//!
//! - [`sse`]: server-sent events from bytes cut anywhere;
//! - [`completion`]: the pieces of a streamed Chat Completions answer.

pub mod completion;
pub mod sse;
