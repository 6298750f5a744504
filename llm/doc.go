// Package llm is the interface to language models: an OpenAI-compatible
// provider (chat completions with streaming and tool calls) and an offline,
// deterministic demo model that needs no network.
//
// Provider is the contract the agents use: Complete sends a Request (messages,
// tool specs), streams text deltas to a TokenFunc and returns the whole
// Response (text and/or tool calls, usage). Errors wrap ErrAuth,
// ErrRateLimited, ErrUnavailable or ErrBadRequest, or the context's error when
// the call was cancelled; test them with errors.Is.
//
// New picks a provider from a Config:
//
//   - OpenAI (NewOpenAI) speaks the chat-completions wire format and works
//     with OpenAI and with compatible servers such as Ollama, vLLM, DeepSeek
//     and Qwen. It streams server-sent events, reassembles tool calls whose
//     arguments arrive in pieces, retries 429/5xx/network failures with
//     exponential backoff and jitter (honouring Retry-After) as long as no
//     text was streamed yet, applies an idle timeout between stream chunks,
//     and also accepts a plain JSON reply from servers that do not stream.
//   - Offline (NewOffline), the "offline demo model", is used when no API key
//     is configured: it follows fixed rules (tool directives such as
//     "/tool NAME {json}", "read file X", "export trace", memory phrases) and
//     otherwise echoes the message, mentioning the earlier turns it sees.
//
// Package llmtest provides a local HTTP server speaking the real OpenAI wire
// format, with scripted replies, for tests of this and other packages.
package llm
